"""The `evaluate` flow: what each engine contributes to the hybrid answer, with intervals."""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow, get_run_logger

from dualengine.settings import Settings
from flows.steps import data
from flows.steps import evaluate as es


@flow(name="evaluate", log_prints=True)
def evaluate_flow(
    profile: str | None = None,
    sets: list[str] | None = None,
    questions: int | None = None,
    model: str | None = None,
    adapter_on_every_set: bool = False,
) -> dict[str, Any]:
    """{base, fine-tuned} × {closed-book, retrieved, oracle} on held-out questions: F1, EM,
    gold-answer NLL, faithfulness and recall with 95 % bootstrap intervals, the FT+RAG gaps,
    a diagnosis line and the conflict rate; to MLflow, Prefect artifacts and an HTML report.

    "Fine-tuned" is what the system answers with: for a set whose corpus style does not use
    the adapter (`training.styles.<set>.use_adapter: false`) that is the base model, unless
    `adapter_on_every_set` scores the adapter there too (to decide whether to turn it on)."""
    from dualengine.api import load_generator_version
    from dualengine.resolve import generator_version, index_alias, live_index
    from dualengine.weaviate_client import weaviate_client
    from tasks import score_cache
    from tasks.attribution import conflict_rate, diagnose, gaps, table_rows

    settings = Settings.for_profile(profile)
    config = settings.config()
    evaluation, reg = config.evaluation, config.registry
    sets = sets or list(evaluation.sets)
    questions = questions or evaluation.questions
    ref = generator_version(settings, model)  # the given one, else champion, else challenger
    paths, data_version = data.prepare_data(settings, None, None, None)
    with weaviate_client(settings) as client:
        collection = live_index(client, index_alias(settings))
    finetuned, version = load_generator_version(settings, ref)
    base, _ = load_generator_version(settings, "base")
    sections, cache_notes = [], {}
    for name in sets:
        items = es.attribution_items(settings, name, questions)
        system, max_new = es.answer_style(settings, name)
        by_base = es.answered_by_base(settings, name, adapter_on_every_set)
        scores, answers = {}, {}
        for label, generator in (("base", base), ("finetuned", finetuned)):
            if label == "finetuned" and by_base:  # the system answers this corpus unadapted
                answers[label] = answers["base"]
                scores |= {("finetuned", c): s for (m, c), s in list(scores.items()) if m == "base"}
                continue
            run = partial(
                es.score_model_conditions, settings, generator, label, items, max_new, system
            )
            if label == "base":  # the base model's scores are reused until an input changes
                (by_context, answers[label]), source = score_cache.cached(
                    es.base_score_key(settings, name, items, max_new, collection, system),
                    run,
                )
                cache_notes[name] = source
            else:
                by_context, answers[label] = run()
            scores |= {(label, context): s for context, s in by_context.items()}
        seed, n_boot = config.training.seed, reg.bootstrap_samples
        sections.append(
            {
                "set": name,
                "items": items,
                "eval_path": es.set_paths(settings, name)[1],
                "rows": table_rows(scores, seed, n_boot),
                "gaps": gaps(scores, seed, n_boot),
                "diagnosis": diagnose(
                    scores,
                    evaluation.diagnosis.retrieved_vs_oracle_min,
                    evaluation.diagnosis.oracle_f1_min,
                ),
                "conflict_rate": conflict_rate(
                    answers["finetuned"]["retrieved"], answers["finetuned"]["closed_book"]
                ),
                "answered_by": "base model (training.styles.use_adapter: false)"
                if by_base
                else f"{reg.model_name} v{version}",
            }
        )
        get_run_logger().info("%s: %s", name, sections[-1]["diagnosis"])
    meta = {
        "profile": settings.profile,
        "finetuned_model": reg.model_name,
        "finetuned_version": version,
        "index_collection": collection,
        "data_version": data_version,
        "questions_per_set": questions,
        "sets": ",".join(sets),
        "eval_file": str(paths.eval),
        "base_scores_from_cache": ",".join(
            f"{k}:{'yes' if v['from_cache'] else 'no'}" for k, v in cache_notes.items()
        ),
    }
    recorded = es.record_attribution(settings, sections, meta)
    return {
        "meta": meta,
        "sets": [
            {k: s[k] for k in ("set", "rows", "gaps", "diagnosis", "conflict_rate", "answered_by")}
            for s in sections
        ],
        **recorded,
    }
