"""Training checkpoints that hold what training changes: the trainable (LoRA) weights, the
optimizer, scheduler, RNG states and the position — not the frozen base model, which
Accelerate's `save_state` would write whole at every checkpoint (542 MB for SmolLM2-135M
against 7 MB of adapter)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

WEIGHTS = "model.safetensors"


def trainable_only(accelerator) -> None:
    """Hook Accelerate's save/load so the model part of a checkpoint is its trainable
    parameters only; a resumed run gets them back onto the freshly loaded base model, and a
    checkpoint missing any of them (or holding unknown names) is refused."""
    from safetensors.torch import load_file

    def trainable_names(model) -> set[str]:
        return {name for name, p in model.named_parameters() if p.requires_grad}

    def before_save(models, weights, _output_dir) -> None:
        for model, state in zip(models, weights, strict=True):
            keep = trainable_names(model)
            for name in [k for k in state if k not in keep]:
                del state[name]

    def before_load(models, input_dir) -> None:
        for index, model in reversed(list(enumerate(models))):
            suffix = f"_{index}" if index else ""
            path = Path(input_dir) / WEIGHTS.replace(".safetensors", f"{suffix}.safetensors")
            state = load_file(str(path))
            wanted = trainable_names(model)
            missing, unknown = wanted - set(state), set(state) - wanted
            if missing or unknown:
                raise RuntimeError(
                    f"{path}: checkpoint does not match the model's trainable weights "
                    f"(missing {sorted(missing)[:3]}, unknown {sorted(unknown)[:3]})"
                )
            model.load_state_dict(state, strict=False)
            models.pop(index)  # loaded here: Accelerate skips it

    accelerator.register_save_state_pre_hook(before_save)
    accelerator.register_load_state_pre_hook(before_load)


def save_checkpoint(accelerator, folder: Path, meta: dict[str, Any]) -> None:
    """Write the checkpoint beside `folder`, then swap it in (a crash mid-save keeps the old)."""
    staging = folder.with_name(folder.name + ".partial")
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        (staging / "progress.json").write_text(json.dumps(meta))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    accelerator.wait_for_everyone()


def latest_checkpoint(checkpoint_dir: Path | None) -> tuple[Path | None, dict[str, Any]]:
    """The latest complete checkpoint and its progress record, else (None, {})."""
    if checkpoint_dir is None:
        return None, {}
    folder = checkpoint_dir / "latest"
    if not (folder / "progress.json").exists():
        return None, {}
    return folder, json.loads((folder / "progress.json").read_text())
