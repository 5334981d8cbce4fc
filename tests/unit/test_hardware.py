"""Precision and thread choices from what the hardware offers (tasks.hardware): pure logic."""

from __future__ import annotations

import pytest

from tasks import hardware

ZEN4 = "flags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16 avx512_vbmi\n"
SKYLAKE = "flags\t\t: fpu sse avx2 fma avx512f avx512bw avx512vl\n"
SAPPHIRE = "flags\t\t: fpu avx512f amx_tile amx_int8 amx_bf16\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert hardware.cpu_has_bf16(ZEN4)
    assert hardware.cpu_has_bf16(SAPPHIRE)
    assert not hardware.cpu_has_bf16(SKYLAKE)
    assert not hardware.cpu_has_bf16("flags : avx512_bf16x\n")  # a whole flag, not a prefix
    assert not hardware.cpu_has_bf16("")


@pytest.mark.parametrize(
    ("native", "asked", "expected"),
    [
        (True, "auto", "bf16"),
        (False, "auto", "none"),  # emulated bf16 is slower than fp32: keep fp32
        (False, "bf16", "bf16"),  # an explicit choice is kept
        (True, "none", "none"),
        (True, "int8", "int8"),
    ],
)
def test_auto_precision_is_bf16_only_with_native_bf16(monkeypatch, native, asked, expected):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda cpuinfo=None: native)
    assert hardware.resolve_quantize(asked) == expected


def test_a_gpu_answers_in_the_precision_it_loaded():
    assert hardware.resolve_quantize("auto", cuda=True) == "none"
    assert hardware.resolve_quantize("bf16", cuda=True) == "none"


@pytest.mark.parametrize("bad", ["int4", "", "BF16", "fp32"])
def test_an_unknown_precision_is_refused(bad):
    with pytest.raises(ValueError, match="quantize must be one of"):
        hardware.resolve_quantize(bad)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "no")])
def test_auto_mixed_precision_on_a_cpu(monkeypatch, native, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda cpuinfo=None: native)
    assert hardware.resolve_mixed_precision("auto") == expected
    assert hardware.resolve_mixed_precision("no") == "no"  # explicit values pass through
    assert hardware.resolve_mixed_precision("fp16") == "fp16"


@pytest.mark.parametrize(
    ("cores", "busy", "expected"),
    [(2, 0.0, 2), (2, 0.3, 2), (2, 0.8, 1), (2, 1.7, 1), (2, 5.0, 1), (16, 3.2, 13), (1, 0, 1)],
)
def test_free_cores_leaves_what_the_others_use(monkeypatch, cores, busy, expected):
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(hardware, "busy_cores", lambda sample_s=0.3: busy)
    assert hardware.free_cores() == expected


def test_busy_cores_is_measured_between_two_reads_of_proc_stat(monkeypatch):
    reads = iter([(100, 1000), (250, 1200)])  # 150 busy of 200 ticks on 2 cores → 1.5 cores
    monkeypatch.setattr(hardware, "_busy_and_total", lambda: next(reads))
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 2)
    assert hardware.busy_cores(sample_s=0) == pytest.approx(1.5)
    monkeypatch.setattr(hardware, "_busy_and_total", lambda: None)  # no /proc: assume idle
    assert hardware.busy_cores(sample_s=0) == 0.0


def test_busy_cores_reads_this_machine():
    measured = hardware.busy_cores(sample_s=0.05)
    assert 0.0 <= measured <= (hardware.os.cpu_count() or 1) + 1e-9


def test_settings_threads_are_the_setting_else_the_free_cores(monkeypatch):
    from dualengine.settings import Settings

    monkeypatch.delenv("DUALENGINE_TORCH_THREADS", raising=False)
    monkeypatch.setattr(hardware, "free_cores", lambda sample_s=0.3: 7)
    assert Settings().threads() == 7
    assert Settings(torch_threads=3).threads() == 3
