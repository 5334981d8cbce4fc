"""benchmarks/gate_bench.py end to end on the CPU with the tiny model: a small bundle shaped like
gpu_quality's `prepare` output (one chunk per paragraph, the other documents as retrieved
distractors, no embedding model), a random LoRA adapter, 4 held-out questions scored before
(7e717f1) and now. No services: the script must run where there are none."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from dualengine.models import ensure_tiny_model

ROOT = Path(__file__).resolve().parents[2]


def small_bundle(carry: Path, questions: int) -> None:
    """`bundle.json.gz` for the first held-out XQuAD questions: every document one chunk, each
    question's hits its gold chunk among the others (enough for the oracle's distractors)."""
    from tasks.data import read_jsonl

    xquad = ROOT / "data" / "prepared" / "xquad"
    rows = read_jsonl(xquad / "eval.jsonl")[:questions]
    corpus = {str(d["id"]): d for d in read_jsonl(xquad / "corpus.jsonl")}
    docs = list(dict.fromkeys([str(r["relevant_ids"][0]) for r in rows] + list(corpus)[:8]))
    chunks = {
        f"{d}#0": {"passage_id": f"{d}#0", "title": corpus[d]["title"], "text": corpus[d]["text"]}
        for d in docs
    }
    hits = [f"{d}#0" for d in docs]
    carry.mkdir(parents=True)
    bundle = {
        "chunks": chunks,
        "documents": {d: {"title": corpus[d]["title"], "text": corpus[d]["text"]} for d in docs},
        "train": [],
        "eval": [
            r | {"hit_ids": hits, "gold_passage_id": f"{r['relevant_ids'][0]}#0"} for r in rows
        ],
        "meta": {"retrieval": "every document, gold first (test bundle)"},
    }
    with gzip.open(carry / "bundle.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(bundle, handle)


def random_adapter(base: Path, folder: Path) -> None:
    """A LoRA adapter with random (not zero) weights, so the challenger differs from base."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tasks.base_model import load_base_model
    from tasks.training import load_tokenizer

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    config.init_lora_weights = False
    get_peft_model(load_base_model(str(base)), config).save_pretrained(folder)
    load_tokenizer(str(base)).save_pretrained(folder)


def test_gate_bench_dry_run(settings, tmp_path):
    carry, adapter, out = tmp_path / "carry", tmp_path / "adapter", tmp_path / "gate.json"
    env = os.environ | {"PYTHONPATH": str(ROOT), "DUALENGINE_TORCH_THREADS": "1"}
    small_bundle(carry, 4)
    base = ensure_tiny_model(settings)
    random_adapter(base, adapter)
    command = [sys.executable, str(ROOT / "benchmarks" / "gate_bench.py"), "--questions", "4"]
    command += ["--carry", str(carry), "--base-model", str(base), "--adapter", str(adapter)]
    run = subprocess.run(
        [*command, "--out", str(out)], check=True, env=env, capture_output=True, text=True
    )
    result = json.loads(out.read_text())
    assert json.loads(run.stdout[run.stdout.index("\n{") :]) == result
    assert result["questions"] == 4 and result["torch_threads"] == 1
    assert set(result["seconds"]) == {
        "before_challenger",
        "now_challenger",
        "now_base",
        "before_base",
    }
    assert all(v > 0 for v in result["seconds"].values())
    walls = result["wall_s"]
    assert walls["now_cached_base"] < walls["now_first_promotion"]
    assert result["ratio"]["before_over_now_first_promotion"] > 0
    for path in ("before", "now"):
        assert isinstance(result["decision"][path]["promote"], bool)
        assert result["decision"][path]["reason"].startswith("vs base:")
    agree = result["decision"]["before"]["promote"] == result["decision"]["now"]["promote"]
    assert result["decisions_agree"] is agree
    assert result["precision"]["before"] == "fp32"
    for key in ("before_challenger", "now_challenger"):
        assert set(result["means"][key]) >= {"f1_retrieved", "nll", "refusal_when_missing"}
    # the random adapter changes the model: the challenger's gold-reply NLL is not the base's
    means = result["means"]
    assert means["before_challenger"]["nll"] != means["before_base"]["nll"]


def test_gate_bench_refuses_a_missing_adapter_and_an_empty_bundle(tmp_path):
    carry, adapter = tmp_path / "carry", tmp_path / "adapter"
    carry.mkdir()
    bundle = {"chunks": {}, "documents": {}, "train": [], "eval": [], "meta": {}}
    with gzip.open(carry / "bundle.json.gz", "wt") as handle:
        json.dump(bundle, handle)
    env = os.environ | {"PYTHONPATH": str(ROOT), "DUALENGINE_TORCH_THREADS": "1"}
    command = [sys.executable, str(ROOT / "benchmarks" / "gate_bench.py"), "--carry", str(carry)]
    command += ["--base-model", str(tmp_path / "unused"), "--adapter", str(adapter)]
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "no adapter_config.json" in run.stderr
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "no held-out questions" in run.stderr
