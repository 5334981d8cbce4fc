"""GGUF → safetensors conversion; imports only transformers (usable on a bare GPU image)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def convert_gguf(gguf: Path, target: Path, source: dict[str, str] | None = None) -> Path:
    """A GGUF file → a safetensors model folder (transformers load → fresh model → save; a
    GGUF-loaded model can't be saved directly). Written to a staging folder and renamed, so a
    folder with `.complete` is always whole."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fresh = AutoModelForCausalLM.from_config(loaded.config)
    fresh.load_state_dict(loaded.state_dict())
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    fresh.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "SOURCE.json").write_text(
        json.dumps({"gguf": str(gguf), "licence": "Apache-2.0"} | (source or {}))
    )
    (staging / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
