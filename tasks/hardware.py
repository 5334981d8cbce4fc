"""What the hardware offers the model paths: native bf16, the cores nobody else uses, and the
precision and thread count chosen from them."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

BF16_FLAGS = re.compile(r"\b(avx512_bf16|amx_bf16)\b")


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX): there torch's bf16
    matmul runs ~2x its fp32 speed (194 vs 89 GFLOP/s on one core of the reference machine);
    elsewhere bf16 is emulated and slower than fp32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return bool(BF16_FLAGS.search(cpuinfo))


def _busy_and_total() -> tuple[int, int] | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def busy_cores(sample_s: float = 0.3) -> float:
    """Cores kept busy over the next `sample_s` seconds by whatever runs on the machine
    (called while this process computes nothing: the others). 0.0 where /proc is missing."""
    first = _busy_and_total()
    time.sleep(sample_s)
    second = _busy_and_total()
    if first is None or second is None or second[1] <= first[1]:
        return 0.0
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def free_cores(sample_s: float = 0.3) -> int:
    """The cores other work leaves free right now, at least 1: every core of an idle machine,
    one when the others keep all but one busy."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - busy_cores(sample_s))))


def configure_threads(threads: int | None) -> None:
    """Torch threads: the given number (Settings.threads()), else every core."""
    import torch

    wanted = threads or os.cpu_count() or 1
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def resolve_mixed_precision(value: str) -> str:
    """Accelerate's mixed precision: `auto` is bf16 autocast where the hardware has native
    bf16 (a bf16 GPU; a CPU with AVX-512 BF16/AMX: 1.36x the fp32 tokens/s of the default
    profile, same held-out F1 on 3 seeds, benchmarks/README.md), else `no` (fp32)."""
    if value != "auto":
        return value
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_bf16() else "no"


QUANTIZE_CHOICES = ("auto", "none", "bf16", "int8")


def resolve_quantize(quantize: str, cuda: bool = False) -> str:
    """The precision a CPU model answers in: `auto` is bf16 where the CPU has native bf16
    (same greedy answers as fp32 on SmolLM2, ~1.7x faster: benchmarks/README.md, P7), else
    fp32 (`none`); on a GPU the model stays as loaded."""
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, not {quantize!r}")
    if cuda:
        return "none"
    if quantize == "auto":
        return "bf16" if cpu_has_bf16() else "none"
    return quantize
