"""The machine's physical limit for answers: FLOPs per answer ÷ (cores × matmul GFLOP/s in the
precision the model answers in — fp32, or bf16 where `inference.quantize` resolves to it —
measured in the same run). Every serving and scoring figure is reported as a share of it.

    .venv/bin/python benchmarks/physical_limit.py [--prompt-tokens 622] [--new-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import os
import time

DTYPES = {"none": "float32", "fp32": "float32", "bf16": "bfloat16", "int8": "float32"}


def matmul_gflops(threads: int = 1, seconds: float = 3.0, precision: str = "fp32") -> float:
    """GFLOP/s of one prefill-shaped matmul (512 tokens × 576 @ 576 × 1536, SmolLM2's MLP
    shape) on `threads` torch threads, in fp32 or bf16 (`precision`: an inference.quantize
    value; int8 is measured as fp32, its dynamic quantization has no single matmul speed)."""
    import torch

    dtype = getattr(torch, DTYPES[precision])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(512, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    for _ in range(3):
        a @ b
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        n += 1
    elapsed = time.perf_counter() - started
    torch.set_num_threads(before)
    return 2 * 512 * 576 * 1536 * n / elapsed / 1e9


def answer_flops(config, prompt_tokens: int, new_tokens: int) -> float:
    """Forward FLOPs of one greedy answer: every Linear of every layer per token, attention
    scores and values (causal prefill, then one token against the cache), the LM head at the
    last prompt position and at each new token."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * config.intermediate_size
    total = 2 * layers * per_layer * prompt_tokens + 2 * layers * h * prompt_tokens**2
    for step in range(1, new_tokens):
        total += 2 * layers * per_layer + 4 * layers * h * (prompt_tokens + step)
    return total + 2 * h * config.vocab_size * new_tokens


def limit(
    config, prompt_tokens: int, new_tokens: int, cores: int | None = None, precision: str = "fp32"
) -> dict:
    """Answers/s the machine's matmul speed in `precision` allows, with what went into it."""
    cores = cores or os.cpu_count() or 1
    gflops = matmul_gflops(1, precision=precision)
    flops = answer_flops(config, prompt_tokens, new_tokens)
    return {
        "cores": cores,
        "precision": DTYPES[precision],
        "matmul_gflops_per_core": round(gflops, 1),
        "gflop_per_answer": round(flops / 1e9, 1),
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "answers_per_s": round(cores * gflops * 1e9 / flops, 3),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from transformers import AutoConfig

    from dualengine.models import base_model_path
    from dualengine.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-tokens", type=int, default=622)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--precision", help="inference.quantize value (default: params.yaml's)")
    args = parser.parse_args()
    settings = Settings(profile="default")
    config = AutoConfig.from_pretrained(base_model_path(settings))
    precision = args.precision or settings.quantize()
    print(json.dumps(limit(config, args.prompt_tokens, args.new_tokens, None, precision), indent=2))


if __name__ == "__main__":
    main()
