"""Micro-batching of concurrent requests: batches form, keys stay apart, failures stay local,
and batched answers equal one-by-one answers (tiny model)."""

import threading
import time

import pytest

from tasks.batching import MicroBatcher


def _concurrently(batcher, requests):
    """Submit (key, item) requests from one thread each, released together."""
    barrier = threading.Barrier(len(requests))
    out = [None] * len(requests)

    def worker(i, key, item):
        barrier.wait()
        try:
            out[i] = batcher(key, item)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out[i] = exc

    threads = [threading.Thread(target=worker, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_concurrent_requests_share_batches_and_get_their_own_results():
    seen = []

    def run(key, items):
        seen.append((key, list(items)))
        time.sleep(0.05)
        return [f"{key}:{x * 10}" for x in items]

    batcher = MicroBatcher(run, max_batch=4, max_wait_ms=200)
    try:
        out = _concurrently(batcher, [("a", i) for i in range(6)] + [("b", 7), ("b", 8)])
    finally:
        batcher.close()
    assert out == [f"a:{i * 10}" for i in range(6)] + ["b:70", "b:80"]
    assert all(len(items) <= 4 for _, items in seen)  # never more than max_batch
    for key, items in seen:
        assert all(x >= 7 for x in items) if key == "b" else all(x < 7 for x in items)
    assert sum(batcher.batch_sizes) == 8 and max(batcher.batch_sizes) > 1


def test_a_failing_batch_fails_only_its_requests():
    def run(key, items):
        if key == "bad":
            raise RuntimeError("model broke")
        return items

    batcher = MicroBatcher(run, max_batch=8, max_wait_ms=100)
    try:
        out = _concurrently(batcher, [("bad", 1), ("good", 2), ("good", 3)])
        assert isinstance(out[0], RuntimeError) and out[1:] == [2, 3]
        assert batcher("good", 4) == 4  # the worker survives
    finally:
        batcher.close()


def test_a_wrong_number_of_results_is_an_error_not_a_mixup():
    batcher = MicroBatcher(lambda key, items: items[:-1], max_batch=2, max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="returned 0 results"):
            batcher("k", 1)
    finally:
        batcher.close()


def test_close_answers_what_is_queued_and_refuses_more():
    batcher = MicroBatcher(lambda key, items: items, max_batch=1, max_wait_ms=0)
    futures = [batcher.submit("k", i) for i in range(3)]
    batcher.close()
    assert [f.result(5) for f in futures] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("k", 9)


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_ms": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MicroBatcher(lambda k, i: i, **kwargs)


def test_batched_answers_equal_one_by_one_answers(settings):
    """SmolLM2 (the random-init tiny model's greedy choices are near-ties that float32
    rounding of a padded batch can flip; SmolLM2's are not, and it answers each question
    differently, so a batching bug — mask, positions, order — shows)."""
    from dualengine.models import ensure_smollm2
    from tasks.generation import load_generator

    generator = load_generator(str(ensure_smollm2(settings)), None, 512)
    text = (
        "The Rhine is 1,230 km long. It flows from the Swiss Alps to the North Sea through "
        "Germany and the Netherlands."
    )
    passages = [{"passage_id": "p1", "title": "Rhine", "text": text}]
    questions = [
        "How long is the Rhine?",
        "Where does the Rhine flow to?",
        "Which countries does the Rhine cross?",
        "Where does the Rhine start?",
    ]
    alone = [generator.answer_many("Answer.", [q], [passages], 8, raw=True)[0] for q in questions]
    assert len(set(alone)) == len(questions), alone  # distinct answers: a mix-up would show

    def run(system, items):
        return generator.answer_many(system, [q for q, _ in items], [c for _, c in items], 8, True)

    batcher = MicroBatcher(run, max_batch=4, max_wait_ms=500)
    try:
        together = _concurrently(batcher, [("Answer.", (q, passages)) for q in questions])
    finally:
        batcher.close()
    assert together == alone
    assert max(batcher.batch_sizes) > 1
