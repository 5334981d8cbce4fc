"""Behaviour engine: LoRA fine-tuning with PEFT through Accelerate.

Each example is a question with its retrieved passages (the prompt, masked out of the loss) and
the gold answer (the target). The loop is short enough to hold in your head, nanoGPT-style.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualengine.progress import progress
from tasks.prompting import fit_prompt

IGNORE_INDEX = -100


@dataclass
class TrainingExample:
    input_ids: list[int]
    labels: list[int]


@dataclass
class TrainingResult:
    adapter_dir: str
    steps: int
    final_loss: float
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    trainable_params: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def encode_example(
    tokenizer,
    system: str,
    question: str,
    passages: list[dict[str, Any]],
    answer: str,
    max_length: int,
) -> TrainingExample:
    """Prompt + answer ids; labels cover only the answer and the end-of-turn token."""
    eos = tokenizer.eos_token or ""
    answer_ids = tokenizer(answer + eos, add_special_tokens=False)["input_ids"][: max_length // 4]
    prompt = fit_prompt(tokenizer, system, question, passages, max_length - len(answer_ids))
    return TrainingExample(
        input_ids=prompt + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt) + answer_ids,
    )


def collate(batch: list[TrainingExample], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch; padding is masked from attention and loss."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_threads(threads: int | None) -> None:
    """Torch threads: the setting, else every core (use 1 when other work runs beside it)."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


def lora_config(params: dict[str, Any]):
    from peft import LoraConfig

    return LoraConfig(
        r=params["lora_r"],
        lora_alpha=params["lora_alpha"],
        lora_dropout=params["lora_dropout"],
        target_modules=list(params["target_modules"]),
        layers_to_transform=params.get("layers"),
        task_type="CAUSAL_LM",
    )


def load_tokenizer(base_model: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def train_lora(
    base_model: str,
    examples: list[TrainingExample],
    params: dict[str, Any],
    output_dir: Path,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainingResult:
    """Fine-tune a LoRA adapter and save only the adapter to output_dir."""
    import torch
    from accelerate import Accelerator
    from peft import get_peft_model
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

    if not examples:
        raise ValueError("no training examples")
    set_seed(params["seed"])
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=params.get("mixed_precision", "no"),
        gradient_accumulation_steps=params["grad_accum"],
    )
    tokenizer = load_tokenizer(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    model = get_peft_model(model, lora_config(params))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=params["learning_rate"]
    )
    max_steps = int(params["max_steps"])
    scheduler = get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=max(1, max_steps // 10), num_training_steps=max(1, max_steps)
    )
    generator = torch.Generator().manual_seed(params["seed"])
    loader = DataLoader(
        examples,
        batch_size=params["batch_size"],
        shuffle=True,
        generator=generator,
        collate_fn=lambda batch: collate(batch, tokenizer.pad_token_id),
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    model.train()
    result = TrainingResult(
        adapter_dir=str(output_dir), steps=0, final_loss=float("nan"), trainable_params=trainable
    )
    started = time.perf_counter()
    with progress("LoRA fine-tuning", max_steps, key="lora-training") as bar:
        while result.steps < max_steps:
            for batch in loader:
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                result.tokens += int(batch["attention_mask"].sum())
                if accelerator.sync_gradients:
                    result.steps += 1
                    value = float(loss.detach())
                    result.losses.append(value)
                    if on_step:
                        on_step(result.steps, value)
                    bar.advance()
                if result.steps >= max_steps:
                    break
    result.seconds = time.perf_counter() - started
    result.final_loss = result.losses[-1] if result.losses else float("nan")
    accelerator.wait_for_everyone()
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.unwrap_model(model).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return result
