"""Load a base model with an optional LoRA adapter and generate grounded answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tasks.prompting import clean_answer, fit_prompt
from tasks.raft import split_citation


@dataclass
class Generator:
    """A causal LM (with its adapter merged in when given) and its tokenizer."""

    model: Any
    tokenizer: Any
    max_length: int
    batch_size: int = 8
    base_model: str = ""  # where the base weights came from (to load them alone when needed)
    adapter: str | None = None  # the LoRA adapter merged in, if any
    quantize: str = "none"  # the precision it answers in (tasks.hardware.resolve_quantize)
    # tokens in / out per question of the last answer_many call (answers' traces record them)
    last_usage: list[dict[str, int]] = field(default_factory=list)
    _out_counts: list[int] = field(default_factory=list, repr=False)

    def prompts(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        max_new_tokens: int,
    ) -> list[list[int]]:
        """Prompt ids that leave room for max_new_tokens within max_length."""
        budget = self.max_length - max_new_tokens
        return [
            fit_prompt(self.tokenizer, system, q, ctx, budget)
            for q, ctx in zip(questions, contexts, strict=True)
        ]

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy continuations of one batch of prompt ids (left-padded), decoded."""
        import torch

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
        new = out[:, width:]
        self._out_counts = [int((row != pad).sum()) for row in new]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def answer_many(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        max_new_tokens: int,
        raw: bool = False,
        batch_size: int | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[str]:
        """Greedy answers for any number of questions, each with its own passages, in input
        order. Batches are formed from prompts of similar length (sorted), so little of each
        batch is padding; `on_batch(n)` is called after every batch.

        raw=True keeps the reply's first line as generated (with any `[n]` citation)."""
        prompts = self.prompts(system, questions, contexts, max_new_tokens)
        texts = [""] * len(prompts)
        usage = [{"input_tokens": len(p), "output_tokens": 0} for p in prompts]
        size = max(1, batch_size or self.batch_size)
        for rows in length_batches([len(p) for p in prompts], size):
            for row, text in zip(
                rows, self.generate_ids([prompts[r] for r in rows], max_new_tokens), strict=True
            ):
                texts[row] = text
            for row, count in zip(rows, self._out_counts, strict=False):
                usage[row]["output_tokens"] = count
            if on_batch:
                on_batch(len(rows))
        self.last_usage = usage
        return [finish(t, raw) for t in texts]

    def answer_with_nll(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        targets: list[str],
        max_new_tokens: int,
        raw: bool = False,
        batch_size: int | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> tuple[list[str], list[float]]:
        """Greedy answers (like `answer_many`) and each target's NLL given the same prompt
        (like `answer_nll`), from one prefill per batch (`generate_with_nll`)."""
        prompts = self.prompts(system, questions, contexts, max_new_tokens)
        eos = self.tokenizer.eos_token or ""
        wanted = [
            self.tokenizer(t + eos, add_special_tokens=False)["input_ids"][: self.max_length // 4]
            for t in targets
        ]
        texts, values = [""] * len(prompts), [0.0] * len(prompts)
        size = max(1, batch_size or self.batch_size)
        for rows in length_batches([len(p) for p in prompts], size):
            new, nll = generate_with_nll(
                self.model,
                [prompts[r] for r in rows],
                [wanted[r] for r in rows],
                max_new_tokens,
                self.tokenizer.pad_token_id,
                self.tokenizer.eos_token_id,
            )
            decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, text, value in zip(rows, decoded, nll, strict=True):
                texts[row], values[row] = text, value
            if on_batch:
                on_batch(len(rows))
        return [finish(t, raw) for t in texts], values

    def answer_nll(
        self,
        system: str,
        questions: list[str],
        contexts: list[list[dict[str, Any]]],
        targets: list[str],
        batch_size: int | None = None,
    ) -> list[float]:
        """Per-question mean NLL of the target reply given the prompt (teacher forcing), with
        the LM head applied only at the target's positions and length-sorted batches."""
        import torch

        from tasks.training import collate, encode_example, nll_per_row

        examples = [
            encode_example(self.tokenizer, system, q, ctx, t, self.max_length)
            for q, ctx, t in zip(questions, contexts, targets, strict=True)
        ]
        values = [0.0] * len(examples)
        size = max(1, batch_size or self.batch_size)
        for rows in length_batches([len(e.input_ids) for e in examples], size):
            batch = collate([examples[r] for r in rows], self.tokenizer.pad_token_id)
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            with torch.inference_mode():
                for row, value in zip(rows, nll_per_row(self.model, batch), strict=True):
                    values[row] = value
        return values


def generate_with_nll(
    model,
    prompts: list[list[int]],
    targets: list[list[int]],
    max_new_tokens: int,
    pad_id: int,
    eos_id: int | None,
):
    """Greedy continuations of the prompts and the mean NLL of each target after its prompt,
    from one prefill: prompt + target run once (teacher forcing, the LM head only at the
    target's positions), the cache is cut back to the prompt minus its last token, and
    generation continues from there. Returns (new token ids [batch, n], NLLs)."""
    import torch

    width, tail = max(len(p) for p in prompts), max(len(t) for t in targets)
    ids = torch.full((len(prompts), width + tail), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (prompt, target) in enumerate(zip(prompts, targets, strict=True)):
        ids[row, width - len(prompt) : width + len(target)] = torch.tensor(prompt + target)
        mask[row, width - len(prompt) : width + len(target)] = 1
        labels[row, width : width + len(target)] = torch.tensor(target)
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:].ne(-100)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    device = model.device
    ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=keep.to(device),
        )
        losses = torch.nn.functional.cross_entropy(
            out.logits.float(), labels[:, 1:][keep[:, :-1]].to(device), reduction="none"
        ).cpu()
        rows = keep.nonzero()[:, 0]
        cache = out.cache
        cache.crop(-(tail + 1))  # keep the prompt's cache except its last token
        generated = model.generate(
            input_ids=ids[:, :width],
            attention_mask=mask[:, :width],
            cache=cache,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
        )
    nll = [
        float(losses[rows == r].mean()) if bool((rows == r).any()) else 0.0
        for r in range(len(prompts))
    ]
    return generated[:, width:], nll


def length_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Row indices grouped into batches of at most `size` rows of similar length (longest
    first, so a memory problem shows in the first batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + size] for start in range(0, len(order), size)]


def finish(text: str, raw: bool) -> str:
    """A generation's first line (a lead-in ending in ':' keeps the line after it): as
    generated (raw) or cleaned, without its citation."""
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()] or [""]
    line = lines[0]
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"
    if raw:
        return line.strip()
    return clean_answer(split_citation(line)[0])


def quantize_int8(model):
    """Torch dynamic int8 quantization of every Linear layer (weights int8, activations
    quantized per batch): CPU only; the model answers the same way, with cheaper matmuls."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_generator(
    base_model: str, adapter_dir: str | None, max_length: int, quantize: str = "none"
) -> Generator:
    """Base model plus adapter, merged for faster inference, in eval mode; on CPU in the
    precision `resolve_quantize` picks (params.yaml `inference.quantize`)."""
    import torch

    from tasks.base_model import LOAD_LOCK, load_base_model
    from tasks.hardware import resolve_quantize
    from tasks.training import load_tokenizer

    mode = resolve_quantize(quantize, torch.cuda.is_available())
    tokenizer = load_tokenizer(adapter_dir or base_model)
    with LOAD_LOCK:
        model = load_base_model(base_model)
        if adapter_dir:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    elif mode == "int8":
        model = quantize_int8(model)
    elif mode == "bf16":
        model = model.to(torch.bfloat16)
    return Generator(
        model=model,
        tokenizer=tokenizer,
        max_length=max_length,
        base_model=str(base_model),
        adapter=adapter_dir,
        quantize=quantize,
    )


def base_of(generator: Generator) -> Callable[[], Generator] | None:
    """A loader of the generator's base model alone (no adapter), or None when the generator
    has no adapter (it is the base model)."""
    if not getattr(generator, "adapter", None):
        return None
    return lambda: load_generator(
        generator.base_model, None, generator.max_length, generator.quantize
    )
