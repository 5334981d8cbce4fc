"""Behavioural tests of the generator (after Made With ML's tests/model/test_behavioral.py):
refusal when the gold passage is missing (directional), citations that name the passage holding
the answer (minimum functionality) and answers that do not depend on the order of the passages
(invariance).

They run the real answer path with SmolLM2-135M-Instruct (the base model; an adapter folder in
`DUALENGINE_BEHAVIOUR_ADAPTER` is merged in) on held-out XQuAD questions (conftest.py):
`Generator.answer_many` with the prompts of tasks/prompting.py, each reply parsed and cited as
`HybridEngine` does (`split_citation`, `clean_answer`, `is_refusal`, `tasks.hybrid.cite`).
The base model never writes `Not in the documents.` nor an `[n]` marker (none in 48 replies to
16 questions; issue #10: refusal 0.005 on 221 questions), so for it a refusal shows as a reply
the answer path cites no passage for.

Measured on 2026-11-27 (16 questions, one CPU thread); every threshold sits between the
measurement and its control, and the controls are asserted too. tests/model/README.md has the
numbers, a broken-prompt run that fails the thresholds, and the time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tasks.evaluation import token_f1
from tasks.grounding import content_words
from tasks.heldout import doc_of
from tasks.hybrid import cite
from tasks.prompting import clean_answer
from tasks.raft import is_refusal, split_citation
from tasks.retrieval import Passage

pytestmark = pytest.mark.model

# thresholds (of the 16 asked questions), each below what was measured, above its control
CITED_WHEN_MISSING_MAX = 7  # replies without the gold passage citing any (measured 5)
GOLD_CITED_MIN = 12  # replies with the gold passage citing it (measured 14)
ORDER_AGREEMENT_MIN = 0.45  # mean agreement of answers across passage orders (measured 0.57)
_MARKER = re.compile(r"\[(\d+)\]")


def reply_of(raw: str) -> tuple[str, int | None, bool]:
    """(answer, cited passage number, refused) of a raw reply, parsed as HybridEngine does."""
    text, cited = split_citation(raw)
    text = clean_answer(text)
    return text, cited, is_refusal(text)


def citations(raw: str, passages: list[dict[str, Any]]) -> list[str]:
    """Passage ids the answer path cites for this reply (none for a refusal)."""
    text, cited, refused = reply_of(raw)
    if refused or not text:
        return []
    shown = [
        Passage(p["passage_id"], doc_of(p["passage_id"]), p["title"], p["text"], "", [], 1.0)
        for p in passages
    ]
    return [c.passage_id for c in cite(shown, text, cited)]


def cited_any(raws: list[str], shown: list[list[dict[str, Any]]]) -> int:
    """How many replies the answer path cites any passage for."""
    return sum(bool(citations(r, p)) for r, p in zip(raws, shown, strict=True))


def cited_gold(raws: list[str], shown: list[list[dict[str, Any]]], gold: list[str]) -> int:
    """How many replies' citations include their question's gold passage."""
    return sum(g in citations(r, p) for r, p, g in zip(raws, shown, gold, strict=True))


def new_words(answer: str, question: str) -> str:
    """The answer's content words that are not in the question (the small model often
    restates the question; that part says nothing about what it read)."""
    asked = set(content_words(question))
    return " ".join(w for w in content_words(answer) if w not in asked)


def agreement(first: list[str], second: list[str], questions: list[str]) -> float:
    """Mean token F1 between paired answers' new words (two empty answers agree)."""
    pairs = zip(first, second, questions, strict=True)
    return sum(token_f1(new_words(a, q), new_words(b, q)) for a, b, q in pairs) / len(first)


@pytest.fixture(scope="module")
def questions(heldout) -> list[str]:
    return [i["question"] for i in heldout]


@pytest.fixture(scope="module")
def contexts(heldout) -> dict[str, list[list[dict[str, Any]]]]:
    """The gold passage among distractors, the same reversed, and distractors only."""
    return {
        "oracle": [i["oracle"] for i in heldout],
        "reversed": [i["oracle"][::-1] for i in heldout],
        "missing": [i["missing"] for i in heldout],
    }


@pytest.fixture(scope="module")
def replies(smollm2, profile, system_prompt, questions, contexts) -> dict[str, list[str]]:
    """Raw greedy replies (first line, markers kept) in every context."""
    return {
        name: smollm2.answer_many(system_prompt, questions, shown, profile.max_new_tokens, raw=True)
        for name, shown in contexts.items()
    }


def test_no_citation_when_the_gold_passage_is_missing(contexts, replies):
    """DIRectional: without the gold passage the answer path cites a passage for few replies
    (it cites only passages that back a reply, or the model's `[n]`); with the gold passage it
    cites one for most (the control)."""
    cited = cited_any(replies["missing"], contexts["missing"])
    control = cited_any(replies["oracle"], contexts["oracle"])
    refused = sum(reply_of(r)[2] for r in replies["missing"])
    print(
        f"\ncited without the gold passage: {cited}/{len(replies['missing'])} (with it: "
        f"{control}); greedy refusals without it: {refused}"
    )
    assert cited <= CITED_WHEN_MISSING_MAX
    assert control > CITED_WHEN_MISSING_MAX


def test_citations_name_the_gold_passage(questions, contexts, replies, heldout):
    """MFT: a reply's `[n]` markers name passages that exist, and the answer path's citations
    of a reply given the gold passage include it; replies written without it (the control,
    cited against the same passages) name it less often."""
    markers = 0
    for name, raws in replies.items():
        for raw, shown in zip(raws, contexts[name], strict=True):
            numbers = [int(n) for n in _MARKER.findall(raw)]
            markers += len(numbers)
            assert all(1 <= n <= len(shown) for n in numbers), raw
            assert reply_of(raw)[1] in (None, *numbers), raw
    gold = [i["gold_passage_id"] for i in heldout]
    named = cited_gold(replies["oracle"], contexts["oracle"], gold)
    control = cited_gold(replies["missing"], contexts["oracle"], gold)
    print(
        f"\ngold passage cited: {named}/{len(gold)} (written without it: {control}); {markers} [n]"
    )
    assert named >= GOLD_CITED_MIN
    assert control < GOLD_CITED_MIN


def test_answer_is_stable_under_passage_order(questions, replies):
    """INVariance: reversing the passages leaves the answer's new words mostly unchanged;
    answers of other questions, or written without the gold passage, agree less."""
    first = [reply_of(r)[0] for r in replies["oracle"]]
    second = [reply_of(r)[0] for r in replies["reversed"]]
    without = [reply_of(r)[0] for r in replies["missing"]]
    stable = agreement(first, second, questions)
    mismatched = agreement(first, second[1:] + second[:1], questions)
    changed = agreement(first, without, questions)
    print(
        f"\nagreement across passage orders: {stable:.2f} (other questions: {mismatched:.2f}, "
        f"gold passage removed: {changed:.2f})"
    )
    assert stable >= ORDER_AGREEMENT_MIN
    assert max(mismatched, changed) < ORDER_AGREEMENT_MIN
