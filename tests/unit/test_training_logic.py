"""Prompt fitting, label masking and batching with the real SmolLM2 tokenizer."""

import pytest

from dualengine.models import ensure_tiny_model
from tasks.prompting import fit_prompt
from tasks.training import IGNORE_INDEX, collate, encode_example, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(settings):
    return load_tokenizer(str(ensure_tiny_model(settings)))


PASSAGES = [{"passage_id": f"p{i}", "title": "T", "text": "word " * 300} for i in range(4)]


def test_prompt_fits_budget_by_dropping_then_shortening_passages(tokenizer):
    ids = fit_prompt(tokenizer, "system", "question?", PASSAGES, budget=200)
    assert len(ids) <= 200
    assert "(p0)" in tokenizer.decode(ids) and "(p3)" not in tokenizer.decode(ids)


def test_only_the_answer_is_learned(tokenizer):
    example = encode_example(tokenizer, "system", "q?", PASSAGES[:1], "forty two", 256)
    assert len(example.input_ids) == len(example.labels) <= 256
    learned = [t for t in example.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(learned).startswith("forty two")
    assert learned[-1] == tokenizer.eos_token_id


def test_collate_pads_and_masks(tokenizer):
    a = encode_example(tokenizer, "s", "q?", [], "a", 64)
    b = encode_example(tokenizer, "s", "a longer question here?", [], "b c d", 64)
    batch = collate([a, b], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape
    assert int(batch["attention_mask"][0].sum()) == len(a.input_ids)
    assert int(batch["labels"][0, len(a.input_ids) :].ne(IGNORE_INDEX).sum()) == 0


def test_whole_passages_when_they_fit_and_overlong_examples_are_dropped(tokenizer):
    from tasks.raft import encode_raft_examples

    short = [{"passage_id": "p0", "title": "T", "text": "word " * 200}]  # > 160 words, fits
    assert tokenizer.decode(fit_prompt(tokenizer, "s", "q?", short, 1024)).count("word") == 200
    rows = [
        {"id": "fits", "question": "q?", "passages": short, "target": "a [1]"},
        {"id": "long", "question": "q?", "passages": PASSAGES, "target": "a [1]"},
    ]
    kept, dropped = encode_raft_examples(tokenizer, "system", rows, 512)
    assert dropped == ["long"] and len(kept) == 1 and len(kept[0].input_ids) <= 512
    assert tokenizer.decode(kept[0].input_ids).count("word") == 200  # never cut


def test_an_example_may_bring_its_own_answer_style(tokenizer):
    from tasks.raft import encode_raft_examples

    rows = [{"id": "sec", "question": "q?", "passages": [], "target": "Sales rose [1]"}]
    [plain], _ = encode_raft_examples(tokenizer, "SPAN STYLE", rows, 256)
    [styled], _ = encode_raft_examples(
        tokenizer, "SPAN STYLE", [rows[0] | {"system": "PROSE"}], 256
    )
    assert "SPAN STYLE" in tokenizer.decode(plain.input_ids)
    assert "PROSE" in tokenizer.decode(styled.input_ids)
    assert "SPAN STYLE" not in tokenizer.decode(styled.input_ids)


def test_length_grouped_batches_are_a_deterministic_permutation_with_less_padding():
    import random

    from tasks.training import epoch_order, length_grouped_order

    lengths = [random.Random(i).randint(200, 820) for i in range(161)]  # 40 full batches + 1
    order = length_grouped_order(lengths, 4, seed=7, epoch=0)
    assert sorted(order) == list(range(161))
    assert order == length_grouped_order(lengths, 4, seed=7, epoch=0)  # resumable
    assert order != length_grouped_order(lengths, 4, seed=7, epoch=1)

    def padded(o):
        return sum(max(lengths[i] for i in o[k : k + 4]) * 4 for k in range(0, 160, 4))

    assert padded(order) < 0.9 * padded(epoch_order(161, 7, 0))
    firsts = {length_grouped_order(lengths, 4, seed=s, epoch=0)[0] for s in range(10)}
    assert len(firsts) > 1  # the batches are shuffled, not always longest first


def test_only_profiles_that_ask_for_it_group_batches_by_length():
    from dataclasses import dataclass

    from tasks.training import batch_order, epoch_order, length_grouped_order

    @dataclass
    class Example:
        input_ids: list[int]

    examples = [Example([0] * n) for n in (5, 900, 7, 800, 6, 700, 9, 600)]
    plain = {"batch_size": 2, "seed": 3}
    assert batch_order(examples, plain, 0) == epoch_order(8, 3, 0)  # the gpu profile's recipe
    lengths = [len(e.input_ids) for e in examples]
    grouped = batch_order(examples, plain | {"length_grouped": True}, 0)
    assert grouped == length_grouped_order(lengths, 2, 3, 0)
