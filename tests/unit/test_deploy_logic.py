"""`dualengine deploy` input checks and the re-entrant training slot (no servers)."""

from contextlib import contextmanager

import pytest

from flows import locks as slot
from flows.deployments import deploy_to_pool


@pytest.mark.parametrize(
    ("pool_type", "image", "message"),
    [
        ("docker", None, "expected one of process, kubernetes"),
        ("kubernetes", None, "needs --image"),
        ("", "img", "expected one of"),
    ],
)
def test_deploy_refuses_an_unknown_pool_type_or_a_kubernetes_pool_without_image(
    settings_stub, pool_type, image, message
):
    with pytest.raises(ValueError, match=message):
        deploy_to_pool(settings_stub, "pool", pool_type=pool_type, image=image)


@pytest.fixture
def settings_stub():
    from dualengine.settings import Settings

    return Settings()


def test_training_slot_is_taken_once_even_when_nested(monkeypatch):
    taken = []

    @contextmanager
    def fake_concurrency(name, occupy, **options):
        taken.append((name, occupy))
        yield

    import prefect.concurrency.sync

    monkeypatch.setattr(prefect.concurrency.sync, "concurrency", fake_concurrency)
    monkeypatch.setattr(slot, "ensure_limit", lambda name: None)
    with slot.training_slot(), slot.training_slot():  # finetune inside retrain
        pass
    assert taken == [(slot.TRAINING_LIMIT, 1)]
    with slot.training_slot():  # released: the next training takes it again
        pass
    assert len(taken) == 2
