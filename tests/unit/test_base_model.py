"""The base model loads with its output layer tied to the embeddings, never empty."""


def test_tiny_model_output_layer_is_the_embedding(settings):
    from dualengine.models import ensure_tiny_model
    from tasks.base_model import load_base_model

    model = load_base_model(str(ensure_tiny_model(settings)))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert all(p.device.type != "meta" for p in model.parameters())


def test_concurrent_first_loads_leave_weight_tying_intact(settings):
    """Concurrent questions each asking for the embedder at once: transformers swaps
    `tie_weights` for a no-op during a load, and two loads at once used to leave the no-op in
    place, so every later model came up with an empty output layer (seen in the suite)."""
    from concurrent.futures import ThreadPoolExecutor

    from transformers.modeling_utils import PreTrainedModel

    from dualengine.models import embedding_model_path, ensure_tiny_model
    from tasks import embedding
    from tasks.base_model import load_base_model

    original = PreTrainedModel.tie_weights
    embedding._cached_embedder.cache_clear()
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(embedding.load_embedder, [embedding_model_path(settings)] * 6))
    assert PreTrainedModel.tie_weights is original
    model = load_base_model(str(ensure_tiny_model(settings)))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
