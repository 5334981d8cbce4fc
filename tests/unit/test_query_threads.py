"""Concurrent query embeddings leave torch's thread count as they found it, and the answer
engine's batch worker generates with the engine's threads whatever request threads did
(P5, 2026-11-28: racing save-set-restore sequences had left a served model on one thread)."""

import threading

import torch

from dualengine.models import embedding_model_path
from dualengine.settings import Settings
from tasks.embedding import embed_query


def test_concurrent_query_embeddings_restore_the_thread_count():
    model = embedding_model_path(Settings())
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        errors = []

        def ask(n):
            try:
                for i in range(8):
                    assert len(embed_query(model, f"question {n}-{i} about lava")) == 384
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        seen = []
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert torch.get_num_threads() == 2 and seen == [2]
    finally:
        torch.set_num_threads(before)


def test_the_batch_worker_generates_with_the_engine_threads():
    from tasks.hybrid import AnswerConfig, AnswerStyle, HybridEngine

    seen = []

    class Counting:
        last_usage: list = []

        def answer_many(self, system, questions, contexts, max_new_tokens, **_):
            seen.append(torch.get_num_threads())
            return ["x [1]" for _ in questions]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    config = AnswerConfig("A", "m", 5, 0.5, 3, "SPAN", "CB", 16, 0.2, "none", False)
    engine = HybridEngine(Counting(), None, config, "1")
    try:
        torch.set_num_threads(1)  # what a request thread's query embedding does meanwhile
        engine._generate(AnswerStyle("", "SPAN", 16), "q", [])
        assert seen == [2]
    finally:
        engine.close()
        torch.set_num_threads(before)
