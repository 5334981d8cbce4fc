"""dualengine/resolve.py's decisions about the live index and the generator, and the gate's
artifact (pure logic: registry and Weaviate answers are stand-ins)."""

from types import SimpleNamespace

import pytest

from dualengine.resolve import adapter_base, live_index, pick_version
from tasks.gate import GateDecision, interval, row_interval


def aliases(**found: str):
    """A `by_alias` lookup holding these aliases (champion="3", …), recording each ask."""
    asked: list[str] = []

    def by_alias(alias: str) -> str | None:
        asked.append(alias)
        return found.get(alias)

    by_alias.asked = asked
    return by_alias


def test_base_and_version_numbers_need_no_alias_lookup():
    lookup = aliases(champion="3")
    assert pick_version("m", "base", lookup) == "base"
    assert pick_version("m", "7", lookup) == "7"
    assert lookup.asked == []


def test_an_alias_names_the_version_behind_it():
    assert pick_version("m", "champion", aliases(champion="3")) == "3"
    assert pick_version("m", "challenger", aliases(champion="3", challenger="5")) == "5"


def test_missing_champion_means_the_base_model_serves():
    assert pick_version("m", "champion", aliases()) == "base"


def test_any_other_missing_alias_is_refused_not_replaced_by_the_base_model():
    with pytest.raises(LookupError, match="no 'challenger' version"):
        pick_version("m", "challenger", aliases(champion="3"))
    with pytest.raises(LookupError, match="no 'staging' version"):
        pick_version("m", "staging", aliases())


def test_no_reference_means_the_newest_fine_tuned_version():
    assert pick_version("m", None, aliases(champion="3", challenger="5")) == "3"
    assert pick_version("m", None, aliases(challenger="5")) == "5"
    with pytest.raises(LookupError, match="model 'm' has no fine-tuned version yet"):
        pick_version("m", None, aliases())


def test_adapter_base_falls_back_only_for_a_missing_tag_or_an_absent_local_path():
    def configured() -> str:
        return "/models/configured"

    assert adapter_base("HuggingFaceTB/SmolLM2-360M", configured) == "HuggingFaceTB/SmolLM2-360M"
    assert adapter_base("/here/model", configured, exists=lambda p: True) == "/here/model"
    assert adapter_base("/elsewhere/model", configured, exists=lambda p: False) == (
        "/models/configured"
    )
    assert adapter_base(None, configured) == "/models/configured"
    assert adapter_base("", configured) == "/models/configured"


def test_adapter_base_does_not_build_the_configured_model_when_the_tag_is_usable():
    def configured() -> str:
        raise AssertionError("the configured base model was resolved needlessly")

    assert adapter_base("org/model", configured) == "org/model"


def fake_client(target: str | None):
    found = SimpleNamespace(collection=target) if target else None
    return SimpleNamespace(alias=SimpleNamespace(get=lambda alias_name: found))


def test_live_index_is_the_alias_target_or_a_clear_error():
    assert live_index(fake_client("Passages_v2"), "Passages") == "Passages_v2"
    assert live_index(fake_client(None), "Passages", required=False) is None
    with pytest.raises(LookupError, match="run `dualengine reindex` first"):
        live_index(fake_client(None), "Passages")


def test_interval_formats_mean_low_high():
    ci = {"mean": 0.5, "low": 0.25, "high": 0.75}
    assert interval(ci) == "0.500 [0.250, 0.750]"
    assert interval({"mean": 0.1, "low": -0.02, "high": 0.2}, signed=True) == (
        "+0.100 [-0.020, +0.200]"
    )
    assert row_interval({"f1": 0.5, "f1_low": 0.4, "f1_high": 0.6}, "f1") == "0.500 [0.400, 0.600]"
    with pytest.raises(KeyError):
        row_interval({"f1": 0.5}, "f1")


def decision(promote: bool, gains: dict) -> GateDecision:
    return GateDecision(
        promote=promote,
        reason="vs base: f1_retrieved gain +0.1000 (95% CI +0.0500…+0.1500) > 0.02; "
        "vs champion: f1_retrieved gain +0.0100 (95% CI -0.0100…+0.0300) not above 0.02",
        metric="f1_retrieved",
        margin=0.02,
        comparisons={},
        guardrails={"base.format_ok": {"challenger": 1.0, "rival": 0.9, "drop": -0.1}},
        table=[],
        gains=gains,
    )


def test_gate_markdown_holds_verdict_reasons_gain_rows_and_guardrails():
    gains = {
        "base": {
            "f1_retrieved": {"mean": 0.1, "low": 0.05, "high": 0.15},
            "nll": {"mean": 0.3, "low": -0.1, "high": 0.6},
        },
        "champion": {"f1_retrieved": {"mean": 0.01, "low": -0.01, "high": 0.03}},
    }
    text = decision(False, gains).markdown("gen", "4", 42, {"from_cache": True, "key": "abc123"})
    assert text.startswith("## Promotion gate for `gen` v4: refused")
    assert "Metric `f1_retrieved`, margin 0.02, training seed 42" in text
    assert "Base model scores: from the cache (key `abc123`)" in text
    assert "- vs base: f1_retrieved gain +0.1000" in text
    assert "\n- vs champion: f1_retrieved gain +0.0100" in text  # one reason per line
    assert "| rival | f1_retrieved | em_retrieved | f1_oracle | em_oracle | nll |" in text
    assert "| base | +0.100 [+0.050, +0.150] | - | - | - | +0.300 [-0.100, +0.600] |" in text
    assert "| champion | +0.010 [-0.010, +0.030] | - | - | - | - |" in text
    assert '"base.format_ok"' in text and '"drop": -0.1' in text


def test_gate_markdown_of_a_promotion_scored_now_with_no_rival_rows():
    text = decision(True, {}).markdown("gen", "5", 7, {"from_cache": False, "key": "k"})
    assert text.startswith("## Promotion gate for `gen` v5: PROMOTED")
    assert "Base model scores: scored now (key `k`)" in text
    table = text.split("(NLL: reduction):\n\n", 1)[1].split("\n\nGuardrails", 1)[0]
    assert table.splitlines() == [
        "| rival | f1_retrieved | em_retrieved | f1_oracle | em_oracle | nll |",
        "|---|---|---|---|---|---|",
    ]
