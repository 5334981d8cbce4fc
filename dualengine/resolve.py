"""The one place each of three questions is answered: which access groups a caller has,
which collection is the live index, and which generator (version, adapter, base model) a
reference names.

Access groups, shared by every door (CLI, Python API, pyfunc, HTTP) and checked again by the
search itself:
- no groups at all (None, a missing field, NaN from a DataFrame) → the configured anonymous
  groups (params.yaml `retrieval.anonymous_groups`, default `["public"]`); when none are
  configured the request is refused;
- a list (or tuple / 1-D array) of group names → those names, de-duplicated and sorted;
  a name nobody holds simply matches no passage;
- an empty list, a string, any other type, a non-string item, or a name outside
  `[A-Za-z0-9][A-Za-z0-9_.:-]*` (so `"*"`, `"%"`, `"a,b"`, `""`) → `AccessGroupsError`
  (HTTP 400, exit 2). There is no value that means "all groups".

The live index (`index_alias`, `live_index`): the collection params.yaml `index.alias`
points at, or `LookupError` ("run `dualengine reindex` first") when a caller needs one.

The generator (`generator_version`, `resolve_generator`); a reference is
- `"base"` → the configured base model, no adapter;
- a version number → that registry version;
- an alias → the version behind it; when none is: `champion` → the base model (it serves
  until a challenger earns `champion`), any other alias → `LookupError`;
- `None` → the newest fine-tuned version: champion, else challenger, else `LookupError`.
An adapter applies to its version's `base_model` tag; when the tag is missing, or names a
local path that does not exist on this machine, the configured base model is used instead
(the only fallback).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.registry import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    import weaviate

    from dualengine.settings import Settings

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


def index_alias(settings: Settings) -> str:
    """The alias callers search through (params.yaml `index.alias`)."""
    return settings.config().index.alias


def live_index(client: weaviate.WeaviateClient, alias: str, required: bool = True) -> str | None:
    """The collection the alias serves; when there is none, LookupError saying how to build
    one (or None where the caller can do without, required=False)."""
    from tasks.index_versions import alias_target

    live = alias_target(client, alias)
    if live is None and required:
        raise LookupError("no live index: run `dualengine reindex` first")
    return live


BASE = "base"


def pick_version(model: str, ref: str | None, by_alias: Callable[[str], str | None]) -> str:
    """The registry version a reference names, or "base" (policy in the module docstring);
    `by_alias(alias)` is the version behind an alias, or None."""
    if ref == BASE:
        return BASE
    if ref is None:
        for alias in (CHAMPION, CHALLENGER):
            found = by_alias(alias)
            if found is not None:
                return found
        raise LookupError(
            f"model '{model}' has no fine-tuned version yet: run `dualengine finetune`"
        )
    if str(ref).isdigit():
        return str(ref)
    found = by_alias(ref)
    if found is not None:
        return found
    if ref == CHAMPION:
        return BASE
    raise LookupError(f"model '{model}' has no '{ref}' version yet: run `dualengine run`")


def adapter_base(
    tagged: str | None,
    configured: Callable[[], str],
    exists: Callable[[str], bool] = os.path.exists,
) -> str:
    """The base model an adapter applies to: its `base_model` tag, else (missing tag, or a
    local path not on this machine) the configured base model."""
    if not tagged or (tagged.startswith("/") and not exists(tagged)):
        return configured()
    return tagged


@dataclass(frozen=True)
class GeneratorChoice:
    """A resolved generator: registry version ("base" for none), adapter folder, base model."""

    version: str
    adapter: str | None
    base: str
    run_id: str | None = None


def generator_version(settings: Settings, ref: str | None = CHAMPION) -> str:
    """The registry version (or "base") a reference names, without downloading anything."""
    from tasks import registry

    name = settings.config().registry.model_name

    def by_alias(alias: str) -> str | None:
        found = registry.version_by_alias(name, alias)
        return None if found is None else str(found.version)

    return pick_version(name, ref, by_alias)


def resolve_generator(settings: Settings, ref: str | None = CHAMPION) -> GeneratorChoice:
    """Version, local adapter copy (downloaded once per version) and base model of a
    reference (policy in the module docstring)."""
    from dualengine.models import base_model_path
    from tasks import registry

    def configured() -> str:
        return base_model_path(settings)

    version = generator_version(settings, ref)
    if version == BASE:
        return GeneratorChoice(BASE, None, configured())
    name = settings.config().registry.model_name
    found, adapter = registry.download_version(name, version, settings.cache_dir / "adapters")
    base = adapter_base((found.tags or {}).get("base_model"), configured)
    return GeneratorChoice(str(found.version), adapter, base, found.run_id)


__all__ = [
    "AccessGroupsError",
    "GeneratorChoice",
    "adapter_base",
    "caller_groups",
    "generator_version",
    "index_alias",
    "live_index",
    "pick_version",
    "resolve_generator",
    "validate_groups",
]
