"""Typed, validated params.yaml: one pydantic model per section, built once per file.

`load_config(path)` reads the file (cached until it changes) and validates every section; an
unknown key, a wrong type, a missing key or a value out of range raises `ParamsError`, whose
message names the file, the key path (e.g. `training.profiles.default.max_steps`) and the
reason. Steps read the view they need (`config.index.alias`, `config.retrieval.top_k`,
`config.training_profile("tiny").max_steps`) instead of digging through dicts.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator

from dualengine.config_base import (
    CollectionName,
    Count,
    Fraction,
    Group,
    ParamsError,
    PositiveInt,
    RetrievalMetric,
    Section,
    Text,
    bound,
    cron,
    problems,
    sample_names,
)


class DataSection(Section):
    eval_fraction: float = Field(gt=0.0, lt=1.0)
    split_seed: int
    access_groups: list[Group] = Field(min_length=1)


class ValidationSection(Section):
    corpus_max_chars: PositiveInt
    injection_patterns: list[Text]
    question_min_chars: Count
    question_max_chars: PositiveInt
    answer_max_chars: PositiveInt

    @field_validator("injection_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {i} is not a regular expression: {exc}") from exc
        return value

    _max_chars = field_validator("question_max_chars")(bound("question_min_chars", above=True))


class ChunkingSection(Section):
    max_tokens: PositiveInt
    overlap_tokens: Count

    _overlap = field_validator("overlap_tokens")(bound("max_tokens", above=False, strict=True))


class EmbeddingSection(Section):
    batch_size: PositiveInt


class AnswerSection(Section):
    min_similarity: float = Field(ge=-1.0, le=1.0)
    no_answer_text: Text
    conflict_check: bool
    closed_book_prompt: Text
    log_queries: bool
    max_batch: PositiveInt = 8
    batch_wait_ms: float = Field(default=20.0, ge=0.0)
    trace: bool = True


class InferenceSection(Section):
    quantize: Literal["auto", "none", "bf16", "int8"] = "auto"


class RetrievalSection(Section):
    default_groups: list[Group] = Field(min_length=1)
    anonymous_groups: list[Group] = Field(default_factory=list)  # [] → requests refused
    evaluation_groups: list[Group] = Field(default_factory=list)
    top_k: PositiveInt
    alpha: Fraction
    context_passages: PositiveInt

    _passages = field_validator("context_passages")(bound("top_k", above=False))


class IndexSection(Section):
    alias: CollectionName
    collection_prefix: CollectionName
    keep_versions: PositiveInt
    gate_metric: RetrievalMetric
    gate_margin: float = Field(ge=0.0)
    gate_max_questions: PositiveInt
    max_delete_fraction: Fraction = 0.25
    lock_wait_seconds: float = Field(default=60.0, ge=0.0)


class KnowledgeSection(Section):
    corpora: list[Text] = Field(min_length=1)  # bundled sample names or folders
    eval_sets: list[Text]

    _eval_sets = field_validator("eval_sets")(sample_names)


class TrainingProfile(Section):
    """One profile of `training.profiles` (tiny, default, gpu)."""

    max_steps: Count  # 0 = an untrained adapter (a challenger the gate must refuse)
    batch_size: PositiveInt
    grad_accum: PositiveInt
    learning_rate: float = Field(gt=0.0)
    max_length: PositiveInt
    context_length: PositiveInt | None = None  # answering window; default max_length
    lora_r: PositiveInt
    lora_alpha: PositiveInt
    lora_dropout: float = Field(ge=0.0, lt=1.0)
    target_modules: list[Text] = Field(min_length=1)
    layers: list[Count] | None = None  # None = every layer
    train_examples: PositiveInt
    eval_examples: PositiveInt
    max_new_tokens: PositiveInt
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = "no"
    checkpoint_every: Count = 0
    eval_every: Count = 0
    patience: Count = 0  # 0 = no early stopping
    length_grouped: bool = False  # batches of similar length (tasks.training.length_grouped_order)
    gate_metric: str

    @field_validator("gate_metric")
    @classmethod
    def _gate_metric(cls, value: str) -> str:
        from tasks.gate import HIGHER_IS_BETTER

        if value not in HIGHER_IS_BETTER:
            known = ", ".join(HIGHER_IS_BETTER)
            raise ValueError(f"unknown gate metric {value!r} (known: {known})")
        return value

    @property
    def context_tokens(self) -> int:
        """Tokens of prompt + answer when answering (context_length, else max_length)."""
        return self.context_length or self.max_length


class Profile(TrainingProfile):
    """A profile with the shared training keys (system prompt, seed) and any run overrides:
    everything `tasks.training.train_lora` needs."""

    system_prompt: Text
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """The plain dict tasks take (the profile's own keys as written, plus shared ones)."""
        return self.model_dump(exclude_unset=True)


class TrainingStyle(Section):
    """An answer style of one bundled corpus (`training.styles`)."""

    system_prompt: Text
    max_new_tokens: PositiveInt
    train_companies: Count
    train_examples: Count = 0
    groups: list[Group] = Field(min_length=1)
    # False: this corpus is answered by the base model in this style, the adapter is not
    # applied to it (the span-trained adapter made the SEC answers worse than the base model)
    use_adapter: bool = True

    @property
    def system(self) -> str:
        return " ".join(self.system_prompt.split())


class RaftSection(Section):
    distractors: Count
    oracle_missing_fraction: Fraction
    distractor_groups: list[Group] = Field(min_length=1)
    passage_words: Count  # 0 = whole chunks
    eval_held_out: Count


class TrainingSection(Section):
    system_prompt: Text
    profiles: dict[str, TrainingProfile] = Field(min_length=1)
    styles: dict[str, TrainingStyle] = Field(default_factory=dict)
    seed: int
    raft: RaftSection


class RegistrySection(Section):
    model_name: Text
    gate_margin: float
    guardrail_tolerance: float = Field(ge=0.0)
    guardrails: list[str]
    bootstrap_samples: PositiveInt
    hybrid_model_name: Text

    @field_validator("guardrails")
    @classmethod
    def _guardrails(cls, value: list[str]) -> list[str]:
        from tasks.gate import GUARDRAILS, HIGHER_IS_BETTER

        known = list(GUARDRAILS) + [m for m, higher in HIGHER_IS_BETTER.items() if higher]
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown guardrail(s) {unknown} (known: {', '.join(known)})")
        return value


class DiagnosisSection(Section):
    retrieved_vs_oracle_min: float = Field(ge=0.0)
    oracle_f1_min: Fraction


class EvaluationSection(Section):
    sets: list[Text]
    questions: PositiveInt
    max_new_tokens: dict[str, PositiveInt] = Field(default_factory=dict)
    diagnosis: DiagnosisSection

    _sets = field_validator("sets")(sample_names)


class Rule(Section):
    """ok / warn / degraded thresholds of a signal where higher is worse."""

    warn: float
    degraded: float

    _order = field_validator("degraded")(bound("warn", above=True))


class DriftRule(Section):
    """Query drift: permutation-test p-values (lower is worse) and an effect-size floor."""

    warn: Fraction
    degraded: Fraction
    min_mmd2: float = Field(ge=0.0)
    permutations: PositiveInt
    sample_cap: PositiveInt

    _order = field_validator("degraded")(bound("warn", above=False))


class FeedbackRule(Rule):
    min_ratings: PositiveInt
    window_hours: float = Field(gt=0.0)


class KnowledgeRules(Section):
    staleness: Rule
    golden_recall_drop: Rule
    low_score_share: Rule
    corpus_distance_increase: Rule


class BehaviourRules(Section):
    query_drift: DriftRule
    golden_oracle_f1_drop: Rule
    conflict_rate: Rule
    negative_feedback_rate: FeedbackRule


class MonitorSection(Section):
    window_hours: float = Field(gt=0.0)
    min_queries: PositiveInt
    max_queries: PositiveInt
    golden_questions: PositiveInt
    golden_f1: bool = False
    cooldown_minutes: float = Field(ge=0.0)
    knowledge: KnowledgeRules
    behaviour: BehaviourRules


class SchedulesSection(Section):
    monitor: str
    reindex: str
    retrain_cooldown_minutes: float = Field(ge=0.0)

    _crons = field_validator("monitor", "reindex")(cron)


class Config(Section):
    """Every section of params.yaml, validated."""

    data: DataSection
    validation: ValidationSection
    chunking: ChunkingSection
    embedding: EmbeddingSection
    answer: AnswerSection
    inference: InferenceSection = InferenceSection()
    retrieval: RetrievalSection
    index: IndexSection
    knowledge: KnowledgeSection
    training: TrainingSection
    registry: RegistrySection
    evaluation: EvaluationSection
    monitor: MonitorSection
    schedules: SchedulesSection
    _source: str = PrivateAttr(default="params")  # the file, for error messages

    def training_profile(self, name: str, **overrides: Any) -> Profile:
        """The profile `name` with the shared keys merged in and `overrides` applied (each
        validated like the file's keys); an unknown profile raises ParamsError."""
        if name not in self.training.profiles:
            known = ", ".join(self.training.profiles)
            problem = f"training.profiles.{name}: no such profile (known: {known})"
            raise ParamsError(self._source, [problem])
        own = self.training.profiles[name].model_dump(exclude_unset=True)
        shared = {"system_prompt": self.training.system_prompt.strip(), "seed": self.training.seed}
        try:
            return Profile.model_validate(own | shared | overrides)
        except ValidationError as exc:
            where = f"{self._source} (with overrides {sorted(overrides)})"
            raise ParamsError(where, problems(exc, f"training.profiles.{name}")) from None

    def style(self, name: str) -> TrainingStyle | None:
        """The answer style of an indexed bundled corpus (`training.styles`), else None."""
        style = self.training.styles.get(name)
        return style if style is not None and name in self.knowledge.corpora else None


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Config:
    from dualengine.settings import load_params

    try:
        raw = load_params(Path(path))
    except yaml.YAMLError as exc:
        raise ParamsError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ParamsError(path, [f"(top level): a mapping of sections, not {type(raw).__name__}"])
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(path, problems(exc)) from None
    config._source = path
    return config


def load_config(path: Path) -> Config:
    """The validated params file (cached until it changes); ParamsError when it is bad."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (set DUALENGINE_PARAMS_FILE)")
    return _load(str(path), path.stat().st_mtime)


__all__ = ["Config", "ParamsError", "Profile", "TrainingProfile", "load_config"]
