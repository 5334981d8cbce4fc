"""Component attribution: {base, fine-tuned} × {closed-book, retrieved, oracle context}.

Each cell holds per-question scores (token-F1, EM, NLL of the gold answer, a faithfulness
proxy, recall of the relevant document in the context); the table reports their means with 95 %
bootstrap intervals, the paired gaps FT+RAG − RAG-only (what fine-tuning adds on top of
retrieval) and FT+RAG − FT-only (what retrieval adds to the fine-tuned model), and a diagnosis
of which engine holds the system back.
"""

from __future__ import annotations

from typing import Any

from tasks.gate import bootstrap_ci, interval, paired_difference, row_interval

MODELS = ("base", "finetuned")
CONTEXTS = ("closed_book", "retrieved", "oracle")
METRICS = ("f1", "em", "semantic", "nll", "faithfulness", "recall")
GAP_METRICS = ("f1", "em", "semantic", "nll", "faithfulness")
Scores = dict[tuple[str, str], dict[str, list[float]]]


def table_rows(scores: Scores, seed: int, n_boot: int) -> list[dict[str, Any]]:
    """One row per (model, context): every metric's mean, low and high."""
    rows = []
    for model in MODELS:
        for context in CONTEXTS:
            cell = scores[(model, context)]
            row: dict[str, Any] = {"model": model, "context": context, "n": len(cell["f1"])}
            for metric in (m for m in METRICS if m in cell):
                ci = bootstrap_ci(cell[metric], seed, n_boot)
                row |= {
                    metric: ci["mean"],
                    f"{metric}_low": ci["low"],
                    f"{metric}_high": ci["high"],
                }
            rows.append(row)
    return rows


def gaps(scores: Scores, seed: int, n_boot: int) -> dict[str, dict[str, dict[str, float]]]:
    """Paired bootstrap intervals of FT+RAG − RAG-only and FT+RAG − FT-only, per metric."""
    ft_rag = scores[("finetuned", "retrieved")]
    against = {
        "ft_rag_minus_rag_only": scores[("base", "retrieved")],
        "ft_rag_minus_ft_only": scores[("finetuned", "closed_book")],
    }
    return {
        name: {
            m: paired_difference(ft_rag[m], other[m], seed, n_boot)
            for m in GAP_METRICS
            if m in ft_rag and m in other
        }
        for name, other in against.items()
    }


def diagnose(scores: Scores, retrieved_vs_oracle_min: float, oracle_f1_min: float) -> str:
    """Which engine limits the answers: a low retrieved/oracle F1 ratio points at retrieval
    (the right passage is missing), a low oracle F1 at the generator (it fails even when
    handed the right passage). The oracle is the gold chunk among as many retrieved chunks
    as the retrieved condition has (the training shape), so a better adapter raises both; the
    ratio is judged only when the generator can use the oracle at all."""

    def mean(key: tuple[str, str], metric: str) -> float:
        values = scores[key][metric]
        return sum(values) / len(values) if values else 0.0

    oracle = mean(("finetuned", "oracle"), "f1")
    retrieved = mean(("finetuned", "retrieved"), "f1")
    recall = mean(("finetuned", "retrieved"), "recall")
    ratio = retrieved / oracle if oracle > 0 else 0.0
    findings = []
    if oracle < oracle_f1_min:
        findings.append(
            f"behaviour engine: with the oracle passage the fine-tuned model reaches F1 "
            f"{oracle:.3f} (< {oracle_f1_min}), so generation is the bottleneck"
        )
    if oracle >= oracle_f1_min and ratio < retrieved_vs_oracle_min:
        findings.append(
            f"knowledge engine: retrieved context gives {ratio:.0%} of the oracle F1 "
            f"(< {retrieved_vs_oracle_min:.0%}; recall of the gold document {recall:.3f})"
        )
    if not findings:
        return (
            f"both engines healthy: oracle F1 {oracle:.3f}, retrieved/oracle {ratio:.0%}, "
            f"recall {recall:.3f}"
        )
    return "; ".join(findings)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The attribution table with `mean [low, high]` cells."""
    metrics = [m for m in METRICS if rows and m in rows[0]]
    head = "| model | context | n | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (3 + len(metrics))]
    for r in rows:
        cells = [row_interval(r, m) for m in metrics]
        lines.append(f"| {r['model']} | {r['context']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_gaps(result: dict[str, dict[str, dict[str, float]]]) -> str:
    labels = {
        "ft_rag_minus_rag_only": "FT+RAG − RAG-only",
        "ft_rag_minus_ft_only": "FT+RAG − FT-only",
    }
    first = next(iter(result.values()), {})
    metrics = [m for m in GAP_METRICS if m in first]
    lines = ["| gap | " + " | ".join(metrics) + " |", "|" + "---|" * (1 + len(metrics))]
    for name, per_metric in result.items():
        cells = [interval(per_metric[m], signed=True) for m in metrics]
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _target(answer: str, passages: list[dict[str, Any]]) -> str:
    """The gold reply the NLL is measured on: the answer citing its passage when there is one."""
    from tasks.grounding import supports
    from tasks.raft import grounded_target

    if not passages:
        return answer
    position = next((i for i, p in enumerate(passages, 1) if supports(p["text"], answer)), 1)
    return grounded_target(answer, position)


def score_conditions(
    generator,
    system: str,
    closed_book_system: str,
    items: list[dict[str, Any]],
    max_new_tokens: int,
    batch_size: int = 8,
    on_batch=None,
    semantic=None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[str]]]:
    """Answer every item closed-book, with its retrieved passages and with its oracle passage;
    per-question F1, EM, gold-answer NLL, faithfulness and context recall. Returns the scores
    per context and the raw answers (for the conflict rate).

    Items carry `question`, `answer`, `retrieved` and `oracle` (passage dicts) and `recall`
    (share of the question's relevant documents among the retrieved top k). `semantic(answers,
    golds)` adds a per-question semantic score (tasks.evaluation.semantic_scores)."""
    from tasks.evaluation import exact_match, token_f1
    from tasks.grounding import supported_share
    from tasks.heldout import reuse_same_contexts, same_context
    from tasks.raft import is_refusal, split_citation

    questions = [i["question"] for i in items]
    scores: dict[str, dict[str, list[float]]] = {}
    answers: dict[str, list[str]] = {}
    known: tuple[list[list[dict[str, Any]]], list[tuple[str, float]]] | None = None
    for context in CONTEXTS:
        passages = [[] if context == "closed_book" else i[context] for i in items]
        prompt = closed_book_system if context == "closed_book" else system

        def answer(rows: list[int], prompt=prompt, passages=passages) -> list[tuple[str, float]]:
            raw, nll = generator.answer_with_nll(  # answer and gold-reply NLL share a prefill
                prompt,
                [questions[r] for r in rows],
                [passages[r] for r in rows],
                [_target(items[r]["answer"], passages[r]) for r in rows],
                max_new_tokens,
                raw=True,
                batch_size=batch_size,
                on_batch=on_batch,
            )
            return list(zip(raw, nll, strict=True))

        if context == "oracle" and known is not None:  # where retrieval found the gold chunk,
            pairs = reuse_same_contexts(passages, *known, answer)  # the same prompt: reused
            if on_batch:
                on_batch(sum(same_context(a, b) for a, b in zip(passages, known[0], strict=True)))
        else:
            pairs = answer(list(range(len(items))))
        if context == "retrieved":
            known = (passages, pairs)
        raw, nll = [p[0] for p in pairs], [p[1] for p in pairs]
        texts = [split_citation(t)[0] for t in raw]
        answers[context] = texts
        support = [i["retrieved"] if context == "closed_book" else i[context] for i in items]
        scores[context] = {
            "f1": [token_f1(t, i["answer"]) for t, i in zip(texts, items, strict=True)],
            "em": [exact_match(t, i["answer"]) for t, i in zip(texts, items, strict=True)],
            "nll": nll,
            "faithfulness": [
                1.0 if is_refusal(t) else supported_share(t, [p["text"] for p in s])
                for t, s in zip(texts, support, strict=True)
            ],
            "recall": [
                {"closed_book": 0.0, "oracle": 1.0}.get(context, i["recall"]) for i in items
            ],
        }
        if semantic is not None:
            scores[context]["semantic"] = semantic(texts, [i["answer"] for i in items])
    return scores, answers


def conflict_rate(grounded: list[str], closed_book: list[str]) -> float:
    """Share of grounded (non-refusal) answers that the closed-book answer contradicts."""
    from tasks.conflicts import find_conflict
    from tasks.raft import is_refusal

    pairs = [(g, c) for g, c in zip(grounded, closed_book, strict=True) if g and not is_refusal(g)]
    if not pairs:
        return 0.0
    return sum(find_conflict(g, c) is not None for g, c in pairs) / len(pairs)
