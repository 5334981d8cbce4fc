"""The attribution's diagnosis on items from the shared held-out builder: damaged retrieval is
blamed on the knowledge engine, a random generator on the behaviour engine (pure logic: the
generators are stand-ins that read the passages or babble)."""

import random

from tasks.attribution import diagnose, score_conditions
from tasks.grounding import supports
from tasks.heldout import heldout_item
from tasks.raft import REFUSAL

DOCS = {
    f"d{i}": {"passage_id": f"d{i}", "title": f"Town {i}", "text": f"Town {i} lies on river R{i}x."}
    for i in range(40)
}
ROWS = [
    {
        "id": f"q{i}",
        "question": f"Which river is town {i} on?",
        "answer": f"R{i}x",
        "relevant_ids": [f"d{i}"],
    }
    for i in range(40)
]


class Reader:
    """Answers with the passage that holds the answer, cites it; refuses otherwise."""

    answers = {r["question"]: r["answer"] for r in ROWS}

    def answer_many(self, system, questions, contexts, max_new_tokens, raw=False, **_):
        out = []
        for question, passages in zip(questions, contexts, strict=True):
            found = [
                n for n, p in enumerate(passages, 1) if supports(p["text"], self.answers[question])
            ]
            out.append(f"{self.answers[question]} [{found[0]}]" if found else REFUSAL)
        return out

    def answer_with_nll(self, system, questions, contexts, targets, max_new_tokens, **options):
        """The generator's one-prefill entry point: answers plus each target's NLL."""
        answers = self.answer_many(system, questions, contexts, max_new_tokens, **options)
        return answers, [1.0] * len(questions)


class Babbler(Reader):
    """A generator with random weights: fluent nonsense, whatever the context."""

    def __init__(self):
        self.rng = random.Random(5)

    def answer_many(self, system, questions, contexts, max_new_tokens, raw=False, **_):
        words = ["the", "river", "town", "lies", "of", "blue", "seven"]
        return [" ".join(self.rng.choices(words, k=4)) for _ in questions]


def items(damaged: bool):
    rng = random.Random(3)
    out = []
    for i, row in enumerate(ROWS):
        others = [DOCS[f"d{j}"] for j in rng.sample(range(40), 9) if j != i]
        gold = DOCS[f"d{i}"]
        # healthy: the gold chunk ranks first for 9 in 10 questions; damaged: never retrieved
        hits = others if damaged else ([gold, *others] if i % 10 else [*others[:3], gold])
        out.append(heldout_item(row, hits, gold, passages=3, k=5, seed=7))
    return out


def diagnosis(generator, damaged: bool) -> str:
    held = items(damaged)
    scores = {}
    for label, gen in (("base", Babbler()), ("finetuned", generator)):
        by_context, _ = score_conditions(gen, "system", "closed", held, 16)
        scores |= {(label, context): s for context, s in by_context.items()}
    return diagnose(scores, retrieved_vs_oracle_min=0.7, oracle_f1_min=0.3)


def test_healthy_engines():
    assert diagnosis(Reader(), damaged=False).startswith("both engines healthy")


def test_damaged_retrieval_blames_the_knowledge_engine():
    found = diagnosis(Reader(), damaged=True)
    assert found.startswith("knowledge engine") and "behaviour engine" not in found


def test_random_adapter_blames_the_behaviour_engine():
    found = diagnosis(Babbler(), damaged=False)
    assert found.startswith("behaviour engine") and "knowledge engine" not in found
