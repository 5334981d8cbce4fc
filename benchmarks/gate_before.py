"""The promotion gate's scoring as it was at commit 7e717f1, for gate_bench.py to time against.

Adapted from `git show 7e717f1:tasks/gate.py` (`score_model`) and `git show
7e717f1:tasks/generation.py` (`Generator.answer_batch`, `answer_nll`, `load_generator`): the
model in fp32; every condition (retrieved, oracle, missing) answered in batches of 8 in file
order (no length sorting), three greedy generate passes; then a separate teacher-forced forward
over the oracle prompts that materialises full-vocabulary logits at every position
(`tasks.gate.nll_from_logits`).

`BeforeGenerator` offers the two methods today's `tasks.gate.score_model` calls, done the
7e717f1 way, so the per-question metrics and the gold reply's citation number are today's code
for both paths (7e717f1 looked for the document id among chunk ids and fell back to [1]; with
today's targets both paths score the same NLL). Prompt building (`fit_prompt`,
`encode_example`) and the left-padded greedy `generate` call (`Generator.generate_ids`) are
unchanged since 7e717f1 and are reused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class BeforeGenerator:
    """7e717f1's answering and NLL scoring around today's `Generator` (model + tokenizer)."""

    generator: Any  # tasks.generation.Generator

    def answer_batch(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        max_new_tokens: int,
    ) -> list[str]:
        """Greedy raw first-line answers for one batch (left-padded, as given: no sorting)."""
        gen = self.generator
        prompts = gen.prompts(system, questions, contexts, max_new_tokens)
        texts = gen.generate_ids(prompts, max_new_tokens)
        return [t.strip().split("\n", 1)[0].strip() for t in texts]

    def answer_many(self, system: str, *args: Any, **options: Any) -> list[str]:
        """7e717f1's `score_model` loop: `answer_batch` over batches of 8 in file order (args:
        questions, contexts, max_new_tokens; options: raw, batch_size, on_batch)."""
        return self._answers(system, *args, **options)

    def answer_with_nll(
        self, system: str, questions: list[str], contexts: list, *rest: Any, **options: Any
    ) -> tuple[list[str], list[float]]:
        """The oracle answers (one more greedy pass), then the NLL in a pass of its own (rest:
        targets, max_new_tokens; options as `answer_many`)."""
        targets, max_new_tokens = rest
        answers = self._answers(system, questions, contexts, max_new_tokens, **options)
        rows = list(zip(questions, contexts, targets, strict=True))
        return answers, self.nll_full_logits(system, rows, options.get("batch_size", 8))

    def _answers(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        max_new_tokens: int,
        batch_size: int = 8,
        on_batch: Callable[[int], Any] | None = None,
        **_: Any,
    ) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(questions), batch_size):
            rows = slice(start, start + batch_size)
            answers += self.answer_batch(system, questions[rows], contexts[rows], max_new_tokens)
            if on_batch:
                on_batch(len(questions[rows]))
        return answers

    def nll_full_logits(
        self, system: str, rows: list[tuple[str, list[dict[str, Any]], str]], batch_size: int = 8
    ) -> list[float]:
        """7e717f1's `answer_nll`: per-question mean NLL of the target reply given (question,
        passages) (teacher forcing, full-vocabulary logits at every position, batches in file
        order)."""
        import torch

        from tasks.gate import nll_from_logits
        from tasks.training import collate, encode_example

        gen = self.generator
        values: list[float] = []
        for start in range(0, len(rows), batch_size):
            examples = [
                encode_example(gen.tokenizer, system, q, ctx, t, gen.max_length)
                for q, ctx, t in rows[start : start + batch_size]
            ]
            batch = collate(examples, gen.tokenizer.pad_token_id)
            batch = {k: v.to(gen.model.device) for k, v in batch.items()}
            with torch.inference_mode():
                logits = gen.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
            values.extend(nll_from_logits(logits, batch["labels"]))
        return values


def load_before(base_model: str, adapter_dir: str | None, max_length: int) -> BeforeGenerator:
    """7e717f1's `load_generator`: base plus merged adapter, eval mode, fp32 on the CPU."""
    import torch

    from tasks.generation import load_generator

    generator = load_generator(base_model, adapter_dir, max_length, "none")
    if generator.model.dtype != torch.float32:  # SmolLM2 and the tiny model load in fp32
        generator.model = generator.model.to(torch.float32)
    return BeforeGenerator(generator)
