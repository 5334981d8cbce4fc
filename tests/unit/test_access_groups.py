"""The one decision about a caller's groups (dualengine/resolve.py): default deny, never "all"."""

import math

import numpy as np
import pytest

from dualengine.resolve import AccessGroupsError, caller_groups, validate_groups

ANON = ["public"]


@pytest.mark.parametrize("missing", [None, math.nan, float("nan")])
def test_no_groups_means_the_configured_anonymous_groups(missing):
    assert caller_groups(missing, ANON) == ["public"]
    assert caller_groups(missing, ("public", "guests")) == ["guests", "public"]


@pytest.mark.parametrize("anonymous", [None, [], ()])
def test_no_groups_and_no_anonymous_groups_is_refused(anonymous):
    with pytest.raises(AccessGroupsError, match="no anonymous groups"):
        caller_groups(None, anonymous)


def test_a_malformed_anonymous_configuration_is_refused_too():
    with pytest.raises(AccessGroupsError, match="retrieval.anonymous_groups"):
        caller_groups(None, ["*"])


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (["finance"], ["finance"]),
        (["public", "finance", "public"], ["finance", "public"]),
        (("hr",), ["hr"]),
        (np.array(["legal", "hr"]), ["hr", "legal"]),
        (["nobody-has-this"], ["nobody-has-this"]),  # unknown → matches nothing, no error
        (["team:a.b_c-1"], ["team:a.b_c-1"]),
    ],
)
def test_valid_groups_are_kept_exactly(requested, expected):
    assert caller_groups(requested, ANON) == expected


BAD = {
    "empty list": ([], "empty"),
    "empty tuple": ((), "empty"),
    "string": ("public", "not a string"),
    "comma string": ("public,finance", "not a string"),
    "bytes": (b"public", "not a string"),
    "int": (3, "not int"),
    "dict": ({"groups": ["public"]}, "not dict"),
    "set": ({"public"}, "not set"),
    "bool": (True, "not bool"),
    "star": (["*"], "no wildcards"),
    "star among valid": (["public", "*"], "no wildcards"),
    "percent": (["%"], "no wildcards"),
    "glob": (["fin*"], "no wildcards"),
    "comma item": (["public,finance"], "not a group name"),
    "empty name": ([""], "not a group name"),
    "blank name": (["  "], "not a group name"),
    "padded name": ([" public"], "not a group name"),
    "int item": ([1], "is a int"),
    "none item": ([None], "is a NoneType"),
    "nested list": ([["public"]], "is a list"),
    "too long": (["a" * 65], "not a group name"),
    "too many": ([f"g{i}" for i in range(65)], "at most 64"),
    "2-d array": (np.array([["public"]]), "not ndarray"),
}


@pytest.mark.parametrize(("requested", "message"), BAD.values(), ids=BAD.keys())
def test_malformed_groups_are_refused_with_a_message(requested, message):
    with pytest.raises(AccessGroupsError, match=message):
        caller_groups(requested, ANON)


def test_the_search_layer_refuses_what_callers_must_resolve_first():
    for unresolved in (None, [], "public", ["*"]):
        with pytest.raises(AccessGroupsError):
            validate_groups(unresolved)


def test_random_requests_never_widen_beyond_what_was_asked():
    """1,000 random request shapes: the result is the anonymous groups (no groups given), the
    exact names asked for, or a refusal, never anything wider."""
    import random

    rng = random.Random(12)
    names = ["public", "finance", "hr", "*", "", "a,b", "nobody", " x"]
    for _ in range(1000):
        shape = rng.randrange(6)
        if shape == 0:
            requested = None
        elif shape == 1:
            requested = []
        elif shape == 2:
            requested = rng.choice(names)
        else:
            requested = rng.sample(names, rng.randint(1, 3))
        try:
            got = caller_groups(requested, ANON)
        except AccessGroupsError:
            assert requested is not None
            continue
        if requested is None:
            assert got == ANON
        else:
            assert isinstance(requested, list) and set(got) == set(requested)
            assert all(g.strip() and "*" not in g and "," not in g for g in got)


class RecordingEngine:
    """Stands in for HybridEngine: records what the pyfunc would answer."""

    def __init__(self):
        from types import SimpleNamespace

        self.config = SimpleNamespace(anonymous_groups=("public",))
        self.asked = []

    def ask(self, question, groups, conflict_check=None):
        from types import SimpleNamespace

        self.asked.append((question, groups, conflict_check))
        return SimpleNamespace(as_dict=lambda: {"groups": groups})

    def ask_many(self, requests):
        """The pyfunc hands the whole frame over at once."""
        return [self.ask(*request) for request in requests]


def pyfunc_with(engine):
    from dualengine.hybrid_model import HybridPyfunc

    model = HybridPyfunc()
    model.engine = engine
    return model


def test_pyfunc_resolves_groups_once_per_record():
    import pandas as pd

    engine = RecordingEngine()
    rows = pd.DataFrame(
        [
            {"question": "q1", "groups": ["finance", "public"]},
            {"question": "q2", "groups": None},
            {"question": "q3"},
        ]
    )
    out = pyfunc_with(engine).predict(None, rows)
    assert [o["groups"] for o in out] == [["finance", "public"], ["public"], ["public"]]


@pytest.mark.parametrize(
    "record",
    [
        {"question": "q", "groups": "public,finance"},
        {"question": "q", "groups": []},
        {"question": "q", "groups": ["*"]},
        {"question": "q", "groups": [1]},
        {"groups": ["public"]},
        {"question": 7, "groups": ["public"]},
        {"question": "  ", "groups": ["public"]},
    ],
)
def test_pyfunc_refuses_a_malformed_record_with_400_before_answering_any(record):
    from mlflow.exceptions import MlflowException

    engine = RecordingEngine()
    with pytest.raises(MlflowException) as raised:
        pyfunc_with(engine).predict(None, [{"question": "fine", "groups": ["public"]}, record])
    assert raised.value.get_http_status_code() == 400
    assert "record 1" in raised.value.message
    assert engine.asked == []


@pytest.mark.parametrize("group", ["*", "", "a,b"])
def test_cli_ask_refuses_a_wildcard_group_with_exit_2_before_touching_services(group):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["ask", "Who?", "--group", group])
    assert result.exit_code == 2, result.output
    assert "--group" in result.output and "not a group name" in result.output
