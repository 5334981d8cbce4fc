"""The hybrid answer: retrieve from the live index, generate with the champion adapter, cite.

`HybridEngine` is the one answer path behind `dualengine ask`, the Python API
(`dualengine.api.open_engine`) and the MLflow pyfunc model: retrieve (hybrid, filtered by the
caller's groups) → prompt with the passages → generate → answer with citations (passage id,
title, score, a verbatim supporting sentence; only passages that back the answer or that the
model cited), the sources it was shown, and a timing breakdown. When the best passage is
not similar enough to the question, or the model answers that the passages lack the answer, it
says so instead of inventing. Optionally the closed-book answer is generated too and a factual
disagreement is flagged (the grounded answer wins). Every answer can go to the query log and
is an MLflow trace (spans: retrieval, prompt, generation, grounding; see tasks/tracing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks import tracing_steps
from tasks.batching import MicroBatcher
from tasks.conflicts import find_conflict
from tasks.grounding import best_quote, content_words, supported_share, supports
from tasks.prompting import clean_answer
from tasks.query_log import QueryLog, QueryRecord
from tasks.raft import is_refusal, split_citation
from tasks.retrieval import Passage
from tasks.tracing import AnswerTracer, TraceScope


@dataclass
class Citation:
    passage_id: str
    title: str
    source: str
    score: float
    similarity: float
    supports_answer: bool
    quote: str
    cited_by_model: bool = False


@dataclass
class HybridAnswer:
    question: str
    answer: str
    answered: bool
    citations: list[Citation]
    sources: list[dict[str, Any]]
    model_version: str | None
    index_collection: str | None
    groups: list[str]
    timings_ms: dict[str, float] = field(default_factory=dict)
    conflict: dict[str, Any] | None = None
    closed_book_answer: str | None = None
    faithfulness: float | None = None
    trace_id: str | None = None  # the answer's MLflow trace (None when not traced)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AnswerStyle:
    """How one corpus is answered (params.yaml `training.styles`): its system prompt, token
    budget and whether the adapter or the base model answers it; `name` also tells which
    passages belong to it (their source starts with `<name>/`)."""

    name: str
    system_prompt: str
    max_new_tokens: int
    use_adapter: bool = True

    @property
    def key(self) -> tuple[str, int, bool]:
        """What a generation batch must share: prompt, budget and model."""
        return (self.system_prompt, self.max_new_tokens, self.use_adapter)


def indexed_styles(params: dict[str, Any]) -> tuple[AnswerStyle, ...]:
    """The answer styles of the indexed corpora (a style of a corpus not indexed is unused)."""
    corpora = set(params.get("knowledge", {}).get("corpora") or ())
    styles = params.get("training", {}).get("styles") or {}
    return tuple(
        AnswerStyle(
            name,
            " ".join(str(style["system_prompt"]).split()),
            int(style["max_new_tokens"]),
            bool(style.get("use_adapter", True)),
        )
        for name, style in styles.items()
        if name in corpora
    )


@dataclass
class AnswerConfig:
    """The answer path's settings (params.yaml `retrieval`, `answer` and the training prompt)."""

    alias: str
    embedding_model: str
    top_k: int
    alpha: float
    context_passages: int
    system_prompt: str
    closed_book_prompt: str
    max_new_tokens: int
    min_similarity: float
    no_answer_text: str
    conflict_check: bool
    anonymous_groups: tuple[str, ...] = ("public",)
    max_batch: int = 8  # concurrent generations answered as one batch (micro-batching)
    batch_wait_ms: float = 20.0  # how long the first waiting request waits for company
    styles: tuple[AnswerStyle, ...] = ()  # corpora answered in their own style

    @property
    def default_style(self) -> AnswerStyle:
        return AnswerStyle("", self.system_prompt, self.max_new_tokens)

    @property
    def closed_book_style(self) -> AnswerStyle:
        return AnswerStyle("closed_book", self.closed_book_prompt, self.max_new_tokens)

    def style_for(self, context: list[Passage]) -> AnswerStyle:
        """The style of the corpus the top passage comes from, else the default span style."""
        source = context[0].source if context else ""
        return next(
            (s for s in self.styles if str(source).startswith(f"{s.name}/")), self.default_style
        )

    @classmethod
    def from_params(
        cls, params: dict[str, Any], training: dict[str, Any], embedding_model: str, alias: str
    ) -> AnswerConfig:
        """The answer path's settings; `alias` comes from the caller's resolver
        (`dualengine.resolve.index_alias`), never re-read here."""
        retrieval, answer = params["retrieval"], params["answer"]
        return cls(
            alias=alias,
            embedding_model=embedding_model,
            top_k=int(retrieval["top_k"]),
            alpha=float(retrieval["alpha"]),
            context_passages=int(retrieval["context_passages"]),
            system_prompt=training["system_prompt"],
            closed_book_prompt=" ".join(answer["closed_book_prompt"].split()),
            max_new_tokens=int(training["max_new_tokens"]),
            min_similarity=float(answer["min_similarity"]),
            no_answer_text=answer["no_answer_text"],
            conflict_check=bool(answer["conflict_check"]),
            anonymous_groups=tuple(retrieval.get("anonymous_groups") or ()),
            max_batch=int(answer.get("max_batch", 8)),
            batch_wait_ms=float(answer.get("batch_wait_ms", 20.0)),
            styles=indexed_styles(params),
        )


def cite(passages: list[Passage], answer: str, cited: int | None) -> list[Citation]:
    """Citations for an answer: the passage the model cited and every passage that supports
    the answer (contains it, or most of its content words), the cited one first."""
    wanted = set(content_words(answer))
    out = []
    for number, p in enumerate(passages, start=1):
        overlap = len(wanted & set(content_words(p.text))) / len(wanted) if wanted else 0.0
        backs = supports(p.text, answer) or overlap >= 0.5
        if backs or cited == number:
            out.append(
                Citation(
                    p.passage_id,
                    p.title,
                    p.source,
                    round(p.score, 4),
                    p.similarity,
                    backs,
                    best_quote(p.text, answer),
                    cited == number,
                )
            )
    return sorted(out, key=lambda c: (not c.cited_by_model, not c.supports_answer, -c.score))


class HybridEngine:
    """Holds the generator, a Weaviate client and the query log between questions."""

    def __init__(
        self,
        generator,
        client,
        config: AnswerConfig,
        model_version: str | None,
        query_log: QueryLog | None = None,
        caller: str = "api",
        on_close: Callable[[], None] | None = None,
        tracer: AnswerTracer | None = None,
        base_generator: Callable[[], Any] | None = None,
    ) -> None:
        self.generator = generator
        # the base model for styles that do not use the adapter, loaded on first need (None:
        # the generator has no adapter, so it is the base model)
        self._load_base = base_generator
        self._base: Any = None
        import torch

        # the torch threads chosen for this engine (configure_threads before loading): the
        # batcher's worker pins them before every batch, whatever request threads did since
        self.threads = torch.get_num_threads()
        self.client = client
        self.config = config
        self.model_version = model_version
        self.query_log = query_log
        self.caller = caller
        self._on_close = on_close
        # one worker runs generate(); concurrent questions share its batches
        self.batcher = MicroBatcher(self._generate_batch, config.max_batch, config.batch_wait_ms)
        self.tracer = tracer or AnswerTracer(enabled=False)

    def retrieve(self, question: str, groups: list[str]) -> tuple[list[float], list[Passage]]:
        """Passages for a caller with these (already resolved) groups."""
        from tasks.embedding import embed_query
        from tasks.retrieval import hybrid_search

        vector = embed_query(self.config.embedding_model, question)
        passages = hybrid_search(
            self.client,
            self.config.alias,
            question,
            vector,
            self.config.top_k,
            self.config.alpha,
            groups,
        )
        return vector, passages

    def generator_for(self, use_adapter: bool):
        """The fine-tuned generator, or the base model for a style that does not use it
        (loaded once, by the batcher's one worker)."""
        if use_adapter or self._load_base is None:
            return self.generator
        if self._base is None:
            self._base = self._load_base()
        return self._base

    def version_for(self, style: AnswerStyle) -> str | None:
        """The model version that answers in this style (`base` where the adapter is off)."""
        if style.use_adapter or self._load_base is None:
            return self.model_version
        return "base"

    def _generate_batch(
        self, key: tuple[str, int, bool], items: list[tuple[str, list[dict]]]
    ) -> list[tuple[str, dict[str, int]]]:
        """Raw replies with their token counts (empty when the generator does not count)."""
        import torch

        torch.set_num_threads(self.threads)
        system, max_new_tokens, use_adapter = key
        generator = self.generator_for(use_adapter)
        texts = generator.answer_many(
            system,
            [question for question, _ in items],
            [passages for _, passages in items],
            max_new_tokens,
            raw=True,
            batch_size=self.config.max_batch,
        )
        usage = getattr(generator, "last_usage", None) or []
        return [(t, dict(usage[n]) if n < len(usage) else {}) for n, t in enumerate(texts)]

    def _generate(
        self, style: AnswerStyle, question: str, passages: list[Passage]
    ) -> tuple[str, dict[str, int]]:
        """The raw reply and its token counts, generated in a shared batch."""
        return self.batcher(style.key, (question, [p.as_dict() for p in passages]))

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every generation batch run so far."""
        return list(self.batcher.batch_sizes)

    def ask_many(self, requests: list[tuple[str, Any, bool | None]]) -> list[HybridAnswer]:
        """Answer several (question, groups, conflict_check) requests at once, in order: each
        runs in its own thread, so their generations share batches."""
        if len(requests) <= 1:
            return [self.ask(*r) for r in requests]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(requests), self.config.max_batch)) as pool:
            return list(pool.map(lambda r: self.ask(*r), requests))

    def ask(
        self, question: str, groups: Any = None, conflict_check: bool | None = None
    ) -> HybridAnswer:
        """Answer one question for a caller with these access groups (one MLflow trace): None →
        the configured anonymous groups; anything malformed raises `AccessGroupsError`
        (dualengine.resolve)."""
        from dualengine.resolve import caller_groups

        if not isinstance(question, str) or not question.strip():
            raise ValueError("question is empty or not a string")
        groups = caller_groups(groups, self.config.anonymous_groups)
        with self.tracer.answer(
            {"question": question, "groups": sorted(groups), "caller": self.caller},
            {"model_version": str(self.model_version), "index_alias": self.config.alias},
        ) as scope:
            result = self._ask(scope, question, groups, conflict_check)
            tracing_steps.record_answer(scope.root, result)
            return result

    def _ask(
        self,
        scope: TraceScope,
        question: str,
        groups: list[str],
        conflict_check: bool | None,
    ) -> HybridAnswer:
        from dualengine.resolve import live_index

        check = self.config.conflict_check if conflict_check is None else conflict_check
        started = time.perf_counter()
        with scope.span(
            "retrieval", "RETRIEVER", tracing_steps.retrieval_inputs(question, groups, self.config)
        ) as span:
            vector, passages = self.retrieve(question, groups)
            tracing_steps.record_retrieval(span, passages)
        t_retrieved = time.perf_counter()
        context = passages[: self.config.context_passages]
        best = max((p.similarity for p in context), default=0.0)
        text, cited, answered = self.config.no_answer_text, None, False
        version = self.model_version  # the model that answered: "base" for an unadapted style
        if context and best >= self.config.min_similarity:
            style = self.config.style_for(context)
            version = self.version_for(style)
            with scope.span("prompt", "PARSER") as span:
                tracing_steps.record_prompt(span, style, question, context)
            with scope.span("generation", "LLM") as span:
                raw, usage = self._generate(style, question, context)
                tracing_steps.record_generation(span, self, style, raw, usage)
            reply, cited = split_citation(raw)
            reply = clean_answer(reply)
            if reply and not is_refusal(reply):
                text, answered = reply, True
        t_generated = time.perf_counter()
        timings = {
            "retrieval": round((t_retrieved - started) * 1000, 1),
            "generation": round((t_generated - t_retrieved) * 1000, 1),
        }
        closed, conflict = None, None
        if check:
            closed_style = self.config.closed_book_style
            with scope.span("closed_book", "LLM") as span:
                raw, usage = self._generate(closed_style, question, [])
                tracing_steps.record_generation(span, self, closed_style, raw, usage)
            closed = clean_answer(split_citation(raw)[0])
            found = find_conflict(text, closed) if answered else None
            conflict = found.as_dict() if found else None
            timings["closed_book"] = round((time.perf_counter() - t_generated) * 1000, 1)
        with scope.span("grounding", "PARSER", {"answer": text, "answered": answered}) as span:
            citations = cite(context, text, cited) if answered else []
            faithfulness = (
                round(supported_share(text, [p.text for p in context]), 4) if answered else None
            )
            tracing_steps.record_grounding(span, citations, faithfulness, conflict)
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        result = HybridAnswer(
            question=question,
            answer=text,
            answered=answered,
            citations=citations,
            sources=[
                {
                    "passage_id": p.passage_id,
                    "title": p.title,
                    "score": round(p.score, 4),
                    "similarity": p.similarity,
                }
                for p in context
            ],
            model_version=version,
            index_collection=live_index(self.client, self.config.alias, required=False),
            groups=groups,
            timings_ms=timings,
            conflict=conflict,
            closed_book_answer=closed,
            faithfulness=faithfulness,
            trace_id=scope.trace_id,
        )
        if self.query_log is not None:
            self.query_log.record(
                QueryRecord(
                    question=question,
                    embedding=vector,
                    retrieved_ids=[p.passage_id for p in passages],
                    retrieved_scores=[p.score for p in passages],
                    top_similarity=max((p.similarity for p in passages), default=None),
                    answer=text,
                    answered=answered,
                    latency_ms=timings["total"],
                    retrieval_ms=timings["retrieval"],
                    generation_ms=timings["generation"],
                    conflict=None if not check else conflict is not None,
                    closed_book_answer=closed,
                    groups=list(groups),
                    model_version=version,
                    index_collection=result.index_collection,
                    caller=self.caller,
                    trace_id=scope.trace_id,
                )
            )
        return result

    def close(self) -> None:
        self.tracer.flush()
        self.batcher.close()
        if self._on_close is not None:
            self._on_close()
        if self.query_log is not None:
            self.query_log.close()
