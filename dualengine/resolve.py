"""The one decision about a caller's access groups, shared by every door (CLI, Python API,
pyfunc, HTTP) and checked again by the search itself.

- no groups at all (None, a missing field, NaN from a DataFrame) → the configured anonymous
  groups (params.yaml `retrieval.anonymous_groups`, default `["public"]`); when none are
  configured the request is refused;
- a list (or tuple / 1-D array) of group names → those names, de-duplicated and sorted;
  a name nobody holds simply matches no passage;
- an empty list, a string, any other type, a non-string item, or a name outside
  `[A-Za-z0-9][A-Za-z0-9_.:-]*` (so `"*"`, `"%"`, `"a,b"`, `""`) → `AccessGroupsError`
  (HTTP 400, exit 2). There is no value that means "all groups".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_GROUPS = 64


class AccessGroupsError(ValueError):
    """A caller's groups that cannot be understood: refused, never widened."""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, (str, bytes)):
        raise AccessGroupsError(
            f"{what} must be a list of group names, not a string ({value!r:.60}); "
            'send ["a", "b"], not "a,b"'
        )
    if isinstance(value, (list, tuple)):
        return list(value)
    if type(value).__name__ == "ndarray" and getattr(value, "ndim", None) == 1:
        return list(value.tolist())
    raise AccessGroupsError(f"{what} must be a list of group names, not {type(value).__name__}")


def validate_groups(value: Any, what: str = "groups") -> list[str]:
    """A non-empty list of valid group names, de-duplicated and sorted; raises otherwise."""
    items = _as_list(value, what)
    if not items:
        raise AccessGroupsError(
            f"{what} is empty: name at least one group, or send none for the anonymous groups"
        )
    if len(items) > MAX_GROUPS:
        raise AccessGroupsError(f"{what} has {len(items)} names; at most {MAX_GROUPS}")
    for item in items:
        if not isinstance(item, str):
            raise AccessGroupsError(
                f"{what} item {item!r:.40} is a {type(item).__name__}, not a group name"
            )
        if not GROUP_NAME.fullmatch(item):
            raise AccessGroupsError(
                f"{what} item {item!r:.70} is not a group name (letters, digits, _ . : -; "
                "no wildcards: there is no 'all groups')"
            )
    return sorted(set(items))


def caller_groups(requested: Any, anonymous: Sequence[str] | None) -> list[str]:
    """The caller's effective access groups (see the module docstring for every case)."""
    if _is_missing(requested):
        if not anonymous:
            raise AccessGroupsError(
                "no groups given and this deployment has no anonymous groups "
                "(retrieval.anonymous_groups): name the caller's groups"
            )
        return validate_groups(list(anonymous), "retrieval.anonymous_groups")
    return validate_groups(requested)


__all__ = ["AccessGroupsError", "caller_groups", "validate_groups"]
