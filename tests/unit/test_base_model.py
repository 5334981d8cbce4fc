"""The base model loads with its output layer tied to the embeddings, never empty."""


def test_tiny_model_output_layer_is_the_embedding(settings):
    from dualengine.models import ensure_tiny_model
    from tasks.base_model import load_base_model

    model = load_base_model(str(ensure_tiny_model(settings)))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert all(p.device.type != "meta" for p in model.parameters())
