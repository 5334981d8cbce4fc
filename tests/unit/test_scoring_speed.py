"""The cheaper scoring paths give the same numbers as the plain ones (tiny random Llama)."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=320,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def _batch(lengths: list[int], answer: int = 4):
    """Right-padded rows whose last `answer` tokens are labelled (like collate's output)."""
    from tasks.training import TrainingExample, collate

    g = torch.Generator().manual_seed(1)
    examples = []
    for n in lengths:
        ids = torch.randint(1, 320, (n,), generator=g).tolist()
        examples.append(TrainingExample(ids, [-100] * (n - answer) + ids[n - answer :]))
    return collate(examples, 0)


def test_head_at_label_positions_only_gives_the_full_loss(model):
    from tasks.gate import nll_from_logits
    from tasks.training import answer_loss, nll_per_row

    batch = _batch([30, 17, 24])
    with torch.no_grad():
        full = model(**batch)
        assert float(answer_loss(model, batch)) == pytest.approx(float(full.loss), abs=1e-5)
        assert nll_per_row(model, batch) == pytest.approx(
            nll_from_logits(full.logits, batch["labels"]), abs=1e-5
        )


def test_same_gradients_through_a_lora_adapter(model):
    from peft import LoraConfig, get_peft_model

    from tasks.training import answer_loss

    peft_model = get_peft_model(
        model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    batch = _batch([20, 12])
    grads = []
    for loss_of in (lambda: peft_model(**batch).loss, lambda: answer_loss(peft_model, batch)):
        peft_model.zero_grad()
        loss_of().backward()
        grads.append([p.grad.clone() for p in peft_model.parameters() if p.requires_grad])
    for plain, cheap in zip(*grads, strict=True):
        assert torch.allclose(plain, cheap, atol=1e-6)
    peft_model.unload()


def test_a_row_without_labels_scores_zero(model):
    from tasks.training import nll_per_row

    batch = _batch([10, 8])
    batch["labels"][1] = -100
    values = nll_per_row(model, batch)
    assert values[0] > 0 and values[1] == 0.0


def test_length_batches_group_similar_lengths_and_cover_every_row():
    from tasks.generation import length_batches

    batches = length_batches([5, 50, 7, 49, 6], 2)
    assert batches == [[1, 3], [2, 4], [0]]
    assert length_batches([], 8) == []


def test_answer_many_returns_answers_in_input_order_in_few_batches():
    from tasks.generation import Generator

    seen: list[int] = []

    class Fake(Generator):
        def prompts(self, system, questions, contexts, max_new_tokens):
            return [[len(q)] * len(q) for q in questions]

        def generate_ids(self, prompts, max_new_tokens):
            seen.append(len(prompts))
            return [f"answer {len(p)} [1]\nmore" for p in prompts]

    questions = ["a" * n for n in (3, 9, 1, 7, 5)]
    fake = Fake(model=None, tokenizer=None, max_length=64, batch_size=2)
    progress: list[int] = []
    raw = fake.answer_many("s", questions, [[]] * 5, 4, raw=True, on_batch=progress.append)
    assert raw == [f"answer {len(q)} [1]" for q in questions]
    assert seen == [2, 2, 1] and progress == seen
    assert fake.answer_many("s", questions[:1], [[]], 4) == ["answer 3"]
    assert fake.answer_many("s", [], [], 4) == []


def test_model_digest_follows_the_weights(tmp_path):
    import os

    from tasks.score_cache import model_digest, score_key

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a" * 100)
    (tmp_path / "notes.txt").write_text("ignored")
    before = model_digest(str(tmp_path))
    assert model_digest(str(tmp_path)) == before
    (tmp_path / "notes.txt").write_text("still ignored")
    assert model_digest(str(tmp_path)) == before
    (tmp_path / "model.safetensors").write_bytes(b"b" * 100)
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert model_digest(str(tmp_path)) != before
    assert model_digest("org/hub-model") == "org/hub-model"
    assert score_key({"a": 1, "b": [1, 2]}) == score_key({"b": [1, 2], "a": 1})
    assert score_key({"a": 1}) != score_key({"a": 2})


def test_answer_and_nll_from_one_prefill_equal_the_separate_passes(model):
    from tasks.generation import generate_with_nll
    from tasks.training import TrainingExample, collate, nll_per_row

    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(1, 320, (n,), generator=g).tolist() for n in (12, 20, 7)]
    targets = [torch.randint(1, 320, (n,), generator=g).tolist() for n in (3, 1, 5)]
    new, nll = generate_with_nll(model, prompts, targets, 5, pad_id=0, eos_id=None)

    width = max(len(p) for p in prompts)
    ids = torch.zeros((3, width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], mask[row, width - len(p) :] = torch.tensor(p), 1
    with torch.no_grad():
        plain = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0
        )[:, width:]
        batch = collate(
            [
                TrainingExample(p + t, [-100] * len(p) + t)
                for p, t in zip(prompts, targets, strict=True)
            ],
            0,
        )
        separate = nll_per_row(model, batch)
    assert new.tolist() == plain.tolist() and len(set(map(tuple, new.tolist()))) > 1
    assert nll == pytest.approx(separate, abs=1e-4)
