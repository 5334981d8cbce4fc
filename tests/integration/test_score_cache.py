"""The base-model score cache on a real MLflow: reused for the same inputs, recomputed when
any key part changes."""

import uuid


def test_scores_are_reused_until_a_key_part_changes(stack):
    from tasks import score_cache

    calls: list[int] = []

    def compute() -> dict[str, list[float]]:
        calls.append(1)
        return {"f1_retrieved": [0.5, 1.0, 0.0], "nll": [2.5, 1.25, 3.0]}

    parts = {"kind": "test", "base_model": "weights-a", "index": "v1", "inputs": str(uuid.uuid4())}
    first, note1 = score_cache.cached(parts, compute)
    again, note2 = score_cache.cached(parts, compute)
    assert len(calls) == 1 and again == first
    assert not note1["from_cache"] and note2["from_cache"] and note1["key"] == note2["key"]
    for change in ({"index": "v2"}, {"base_model": "weights-b"}, {"held_out": "other"}):
        _, note = score_cache.cached(parts | change, compute)
        assert not note["from_cache"] and note["key"] != note1["key"]
    assert len(calls) == 4
