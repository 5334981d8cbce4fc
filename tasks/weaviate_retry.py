"""Ask a Weaviate cluster again when a read fails for a reason that passes by itself: a lost
replica not yet marked dead (timeouts), or a restarted node that has not yet caught up with the
schema ("could not find class"). Every other error is raised at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TRANSIENT_MESSAGES = (
    "could not find class",
    "deadline exceeded",  # gRPC DEADLINE_EXCEEDED and Go's "context deadline exceeded"
    "connection refused",
    "cannot achieve consistency level",
    "unavailable",
)


def is_transient(exc: BaseException) -> bool:
    """A timeout, or a query error whose message names a passing cluster state."""
    from weaviate.exceptions import WeaviateQueryError, WeaviateTimeoutError

    if isinstance(exc, WeaviateTimeoutError):
        return True
    if isinstance(exc, WeaviateQueryError):
        message = str(exc).lower()
        return any(marker in message for marker in TRANSIENT_MESSAGES)
    return False


def read_with_retries(call: Callable[[], T], attempts: int = 3, delay_s: float = 0.5) -> T:
    """`call()`, asked again (up to `attempts` in all, `delay_s` apart) on a transient error."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(delay_s * attempt)
    raise AssertionError("unreachable")
