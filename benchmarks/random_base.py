"""A base model with a real architecture and tokenizer but random weights, for throughput runs.

    python benchmarks/random_base.py SRC_DIR OUT_DIR [--set hidden_size=2048 --set ...]

Speed and memory of LoRA training depend on the architecture, the sequence lengths and the batch,
not on the weights' values, so where real weights cannot travel (the GPU machine has no model hub
and a 64 MiB upload limit) this builds the same model from SRC_DIR's config.json with fresh
weights, copies its tokenizer files and saves everything to OUT_DIR. `--set` overrides config
fields, e.g. to get a SmolLM2-1.7B-shaped model from the 135M config. Quality numbers from such a
model mean nothing; only tokens/s and memory do.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
    "special_tokens_map.json",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=INT")
    args = parser.parse_args()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = json.loads((args.src / "config.json").read_text())
    raw.pop("quantization_config", None)
    for item in args.set:
        field, value = item.split("=", 1)
        raw[field] = int(value)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps(raw, indent=2))
    config = AutoConfig.from_pretrained(args.out)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(args.out)
    for name in TOKENIZER_FILES:
        if (args.src / name).exists():
            shutil.copy(args.src / name, args.out / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"random-weight {config.model_type} with {params / 1e6:.0f}M parameters in {args.out}")


if __name__ == "__main__":
    main()
