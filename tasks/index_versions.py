"""Knowledge engine, versions: each collection's manifest, the alias that names the live
version (moved atomically), the list of finished versions, pruning and rollback. Schema reads
and writes wait out a cluster's leader election."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tasks.indexing import Manifest, is_complete

if TYPE_CHECKING:
    import weaviate


LEADER_WAIT_SECONDS = 60.0
LEADER_MIN_ATTEMPTS = 3


def through_leader(call: Callable[[], Any], wait: float = LEADER_WAIT_SECONDS) -> Any:
    """A schema read or write (aliases, collection config): on a cluster these go through the
    Raft leader, so they fail for the seconds it takes to elect a new one after a node is
    lost. Retried on a server error or timeout until `wait` runs out, and at least
    `LEADER_MIN_ATTEMPTS` times (a request forwarded to a killed leader can hang for the
    client's whole query timeout, longer than `wait`); a 4xx is raised at once."""
    from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateTimeoutError

    deadline = time.monotonic() + wait
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except (UnexpectedStatusCodeError, WeaviateTimeoutError) as exc:
            status = getattr(exc, "status_code", 500)
            out_of_time = time.monotonic() > deadline and attempts >= LEADER_MIN_ATTEMPTS
            if status < 500 or out_of_time:
                raise
            time.sleep(1.0)


def read_manifest(client: weaviate.WeaviateClient, collection: str) -> dict[str, Any]:
    config = through_leader(client.collections.get(collection).config.get)
    try:
        return json.loads(config.description or "{}")
    except json.JSONDecodeError:
        return {}


def write_manifest(client: weaviate.WeaviateClient, manifest: Manifest) -> None:
    handle = client.collections.get(manifest.collection)
    description = json.dumps(manifest.as_dict(), sort_keys=True)
    through_leader(lambda: handle.config.update(description=description))


def point_alias(client: weaviate.WeaviateClient, alias: str, collection: str) -> None:
    """Create the alias, or move it atomically to the given collection."""
    if through_leader(lambda: client.alias.exists(alias_name=alias)):
        through_leader(
            lambda: client.alias.update(alias_name=alias, new_target_collection=collection)
        )
    else:
        through_leader(lambda: client.alias.create(alias_name=alias, target_collection=collection))


def alias_target(client: weaviate.WeaviateClient, alias: str) -> str | None:
    found = through_leader(lambda: client.alias.get(alias_name=alias))
    return found.collection if found else None


def _prefixed(client: weaviate.WeaviateClient, prefix: str) -> list[str]:
    return [n for n in client.collections.list_all(simple=True) if n.startswith(prefix + "_")]


def list_versions(client: weaviate.WeaviateClient, prefix: str) -> list[dict[str, Any]]:
    """Manifests of every finished version of an index, oldest build first (a build that
    did not finish is not a version)."""
    versions = []
    for name in _prefixed(client, prefix):
        manifest = read_manifest(client, name)
        if is_complete(manifest):
            manifest["collection"] = name
            versions.append(manifest)
    return sorted(versions, key=lambda m: m.get("built_at", ""))


def remove_unfinished(client: weaviate.WeaviateClient, alias: str, prefix: str) -> list[str]:
    """Delete the collections of builds that never finished (never the live one)."""
    live = alias_target(client, alias)
    doomed = [
        n
        for n in _prefixed(client, prefix)
        if n != live and not is_complete(read_manifest(client, n))
    ]
    for name in doomed:
        client.collections.delete(name)
    return doomed


def prune_versions(
    client: weaviate.WeaviateClient, alias: str, prefix: str, keep: int
) -> list[str]:
    """Delete the oldest versions beyond `keep`, never the live one."""
    live = alias_target(client, alias)
    remove_unfinished(client, alias, prefix)
    versions = [v["collection"] for v in list_versions(client, prefix)]
    removable = [v for v in versions if v != live]
    excess = max(0, len(versions) - keep)
    doomed = removable[:excess]
    for name in doomed:
        client.collections.delete(name)
    return doomed


def rollback(client: weaviate.WeaviateClient, alias: str, prefix: str) -> tuple[str, str]:
    """Point the alias at the version built before the live one; returns (from, to)."""
    live = alias_target(client, alias)
    versions = [v["collection"] for v in list_versions(client, prefix)]
    if live not in versions or versions.index(live) == 0:
        raise LookupError(f"no earlier version of {prefix} to roll back to (live: {live})")
    previous = versions[versions.index(live) - 1]
    point_alias(client, alias, previous)
    return live, previous
