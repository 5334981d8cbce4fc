"""A cluster read is asked again only for a passing cluster state, and only a few times."""

import pytest
from weaviate.exceptions import WeaviateQueryError

from tasks.weaviate_retry import is_transient, read_with_retries


def failing(messages):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= len(messages):
            raise WeaviateQueryError(messages[len(calls) - 1], "GRPC search")
        return "hits"

    return call, calls


def test_a_node_that_does_not_know_the_schema_yet_is_asked_again():
    call, calls = failing(["could not find class ClusterTest in schema."])
    assert read_with_retries(call, delay_s=0) == "hits" and len(calls) == 2


def test_a_real_query_error_is_raised_at_once():
    call, calls = failing(["invalid filter: no such property 'grops'"])
    with pytest.raises(WeaviateQueryError):
        read_with_retries(call, delay_s=0)
    assert len(calls) == 1


def test_gives_up_after_the_last_attempt():
    call, calls = failing(["context deadline exceeded"] * 5)
    with pytest.raises(WeaviateQueryError):
        read_with_retries(call, attempts=3, delay_s=0)
    assert len(calls) == 3


def test_other_exceptions_are_not_transient():
    assert not is_transient(ValueError("could not find class"))


def test_a_grpc_deadline_is_transient():
    message = 'status = StatusCode.DEADLINE_EXCEEDED details = "Deadline Exceeded"'
    call, calls = failing([message])
    assert read_with_retries(call, delay_s=0) == "hits" and len(calls) == 2
