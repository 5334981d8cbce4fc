"""Answer style per corpus (pure logic): the engine answers a corpus in its own style, and
with the base model when that style does not use the adapter; generators are stand-ins that
record what they were asked."""

import copy
from pathlib import Path

import pytest

from dualengine.settings import Settings, load_params
from tasks.hybrid import AnswerConfig, AnswerStyle, HybridEngine, indexed_styles
from tasks.retrieval import Passage


class Recorder:
    """A generator stand-in: answers with its own name and remembers each call."""

    def __init__(self, name):
        self.name, self.calls, self.last_usage = name, [], []

    def answer_many(self, system, questions, contexts, max_new_tokens, **_):
        self.calls.append((system, len(questions), max_new_tokens))
        return [f"{self.name} [1]" for _ in questions]


def passage(source):
    return Passage("p#0", "p", "title", "text", source, ["public"], 1.0, 0.9)


@pytest.fixture(scope="module")
def params():
    """The shipped params.yaml (the tests' own params index a test corpus)."""
    return copy.deepcopy(load_params(Path(__file__).parents[2] / "params.yaml"))


def config(params, **changes):
    p = copy.deepcopy(params)
    p["training"]["system_prompt"] = "SPAN"
    p.setdefault("knowledge", {})["corpora"] = ["xquad", "sec10q"]
    p["training"]["styles"]["sec10q"] |= changes
    training = {"system_prompt": "SPAN", "max_new_tokens": 16}
    return AnswerConfig.from_params(p, training, "minilm", "Alias")


def test_the_shipped_params_answer_filings_in_their_style_without_the_adapter(params):
    styles = {s.name: s for s in indexed_styles(params)}
    assert set(styles) == {"sec10q"}
    assert styles["sec10q"].use_adapter is False and styles["sec10q"].max_new_tokens == 160
    assert params["training"]["styles"]["sec10q"]["train_examples"] == 0


def test_a_style_of_a_corpus_not_indexed_is_unused(params):
    p = copy.deepcopy(params)
    p["knowledge"]["corpora"] = ["xquad"]
    assert indexed_styles(p) == ()


def test_style_follows_the_top_passage_and_defaults_to_spans(params):
    cfg = config(params)
    assert cfg.style_for([passage("sec10q/2023 Q1 AAPL.pdf")]).name == "sec10q"
    assert cfg.style_for([passage("xquad.en.json#data[0]"), passage("sec10q/x.pdf")]).name == ""
    assert cfg.style_for([passage("sec10qx/other.pdf")]).name == ""  # a prefix, not a start
    assert cfg.style_for([]).system_prompt == "SPAN"


def test_the_engine_routes_each_style_to_its_model_and_budget(params):
    tuned, base = Recorder("tuned"), Recorder("base")
    loads = []
    engine = HybridEngine(
        tuned,
        None,
        config(params),
        "3",
        base_generator=lambda: loads.append(1) or base,
    )
    try:
        span = engine.config.style_for([passage("xquad.en.json#data[0]")])
        filings = engine.config.style_for([passage("sec10q/2023 Q1 AAPL.pdf")])
        assert engine._generate(span, "q", [])[0] == "tuned [1]"
        assert loads == []  # the base model is loaded only when a style needs it
        assert engine._generate(filings, "q", [])[0] == "base [1]"
        assert engine._generate(filings, "q2", [])[0] == "base [1]"
        assert loads == [1]  # once
        assert engine.version_for(filings) == "base" and engine.version_for(span) == "3"
        assert tuned.calls == [("SPAN", 1, 16)]
        assert base.calls[0][2] == 160 and "filings" in base.calls[0][0]
    finally:
        engine.close()


def test_a_style_that_uses_the_adapter_keeps_it_and_no_loader_means_one_model(params):
    tuned = Recorder("tuned")
    engine = HybridEngine(tuned, None, config(params, use_adapter=True), "3")
    try:
        filings = engine.config.style_for([passage("sec10q/2023 Q1 AAPL.pdf")])
        assert filings.use_adapter and engine._generate(filings, "q", [])[0] == "tuned [1]"
        plain = HybridEngine(Recorder("base-only"), None, config(params), "base")
        try:  # a generator without an adapter is the base model: it answers every style
            assert plain._generate(filings, "q", [])[0] == "base-only [1]"
            assert plain.version_for(filings) == "base"
        finally:
            plain.close()
    finally:
        engine.close()


def test_requests_of_different_styles_never_share_a_batch():
    span, filings = AnswerStyle("", "SPAN", 16), AnswerStyle("sec10q", "SPAN", 160, False)
    assert span.key != filings.key  # same prompt, other budget and model: other batches


def test_evaluate_scores_what_the_system_answers_with(tmp_path, params):
    """`evaluate` on the SEC set: "finetuned" is the base model there unless asked for the
    adapter; XQuAD (no style) always scores the adapter."""
    import yaml

    from flows.steps.evaluate import answered_by_base

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    settings = Settings(params_file=path)
    assert answered_by_base(settings, "sec10q")
    assert not answered_by_base(settings, "sec10q", adapter_on_every_set=True)
    assert not answered_by_base(settings, "xquad")
    params = copy.deepcopy(params)
    params["training"]["styles"]["sec10q"]["use_adapter"] = True
    path.write_text(yaml.safe_dump(params))
    assert not answered_by_base(Settings(params_file=path), "sec10q")
