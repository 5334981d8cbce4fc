"""Load a base model with an optional LoRA adapter and generate grounded answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.prompting import clean_answer, fit_prompt


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
    ) -> list[str]:
        """Greedy answers for a batch of questions, each with its own passages."""
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
        return [clean_answer(t) for t in texts]


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
