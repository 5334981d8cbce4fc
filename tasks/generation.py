"""Load a base model with an optional LoRA adapter and generate grounded answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.prompting import clean_answer, fit_prompt
from tasks.raft import split_citation


@dataclass
class Generator:
    """A causal LM (with its adapter merged in when given) and its tokenizer."""

    model: Any
    tokenizer: Any
    max_length: int

    def answer_batch(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        max_new_tokens: int,
        raw: bool = False,
    ) -> list[str]:
        """Greedy answers for a batch of questions, each with its own passages.

        raw=True keeps the reply's first line as generated (with any `[n]` citation)."""
        import torch

        budget = self.max_length - max_new_tokens
        prompts = [
            fit_prompt(self.tokenizer, system, q, ctx, budget)
            for q, ctx in zip(questions, contexts, strict=True)
        ]
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding for generation
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        if raw:
            return [t.strip().split("\n", 1)[0].strip() for t in texts]
        return [clean_answer(split_citation(t.strip().split("\n", 1)[0])[0]) for t in texts]

    def answer_nll(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        targets: list[str],
        batch_size: int = 8,
    ) -> list[float]:
        """Per-question mean NLL of the target reply given the prompt (teacher forcing)."""
        import torch

        from tasks.gate import nll_from_logits
        from tasks.training import collate, encode_example

        values: list[float] = []
        for start in range(0, len(questions), batch_size):
            examples = [
                encode_example(self.tokenizer, system, q, ctx, t, self.max_length)
                for q, ctx, t in zip(
                    questions[start : start + batch_size],
                    contexts[start : start + batch_size],
                    targets[start : start + batch_size],
                    strict=True,
                )
            ]
            batch = collate(examples, self.tokenizer.pad_token_id)
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            with torch.inference_mode():
                logits = self.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
            values.extend(nll_from_logits(logits, batch["labels"]))
        return values


def load_generator(base_model: str, adapter_dir: str | None, max_length: int) -> Generator:
    """Base model plus adapter, merged for faster inference, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    from tasks.training import load_tokenizer

    tokenizer = load_tokenizer(adapter_dir or base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    return Generator(model=model, tokenizer=tokenizer, max_length=max_length)
