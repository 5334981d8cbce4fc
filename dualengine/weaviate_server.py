"""The Weaviate server binary: built with Go, or fetched by weaviate-client's embedded mode.

Both give the same pinned server version; the binary then runs as one local node. Weaviate
v1.38 binds its public gRPC port and its cluster data port on every interface whatever the
configuration (`net.Listen(":port")`), so the Go build patches two lines (LISTEN_PATCHES) of a
copy of the module source to bind them to GRPC_BIND_ADDR and CLUSTER_BIND_ADDR; everything else
is the upstream source of the pinned version. The embedded download cannot be patched: a node
started from it still listens on all interfaces on those two ports (`services up` says so).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from dualengine.settings import WEAVIATE_VERSION, Settings

GO_MODULE = f"github.com/weaviate/weaviate@v{WEAVIATE_VERSION}"
GO_PACKAGE = f"github.com/weaviate/weaviate/cmd/weaviate-server@v{WEAVIATE_VERSION}"
# (file in the module, text to find, replacement): every text must occur exactly once.
LISTEN_PATCHES: tuple[tuple[str, str, str], ...] = (
    (
        "adapters/handlers/grpc/server.go",
        'lis, err := net.Listen("tcp", fmt.Sprintf(":%d",\n'
        "\t\tstate.ServerConfig.Config.GRPC.Port))",
        'lis, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("GRPC_BIND_ADDR"),\n'
        "\t\tstrconv.Itoa(state.ServerConfig.Config.GRPC.Port)))",
    ),
    ("adapters/handlers/grpc/server.go", "import (\n", 'import (\n\t"os"\n'),
    (
        "adapters/handlers/rest/clusterapi/serve.go",
        'Addr:      fmt.Sprintf(":%d", port),',
        "Addr:      net.JoinHostPort(appState.ServerConfig.Config.Cluster.BindAddr, "
        "fmt.Sprint(port)),",
    ),
    ("adapters/handlers/rest/clusterapi/serve.go", "import (\n", 'import (\n\t"net"\n'),
)


class WeaviateBinaryError(RuntimeError):
    """No Weaviate binary could be had; the message says what was tried and what to do."""


def go_binary_path(settings: Settings) -> Path:
    """The loopback-patched build (see LISTEN_PATCHES)."""
    return settings.cache_dir / f"weaviate-v{WEAVIATE_VERSION}-loopback" / "weaviate-server"


def unpatched_binary_path(settings: Settings) -> Path:
    """A plain `go install` of earlier versions of this project (binds gRPC on all interfaces)."""
    return settings.cache_dir / f"weaviate-v{WEAVIATE_VERSION}" / "weaviate-server"


def is_loopback_build(binary: Path, settings: Settings) -> bool:
    return binary == go_binary_path(settings)


def embedded_binary_dir(settings: Settings) -> Path:
    return settings.cache_dir / "weaviate-embedded"


def find_binary(settings: Settings, patched_only: bool = False) -> Path | None:
    """An already installed binary, if any (the loopback-patched build first)."""
    built = go_binary_path(settings)
    if built.exists():
        return built
    if patched_only:
        return None
    if unpatched_binary_path(settings).exists():
        return unpatched_binary_path(settings)
    folder = embedded_binary_dir(settings)
    if folder.exists():
        for candidate in sorted(folder.glob(f"weaviate-*{WEAVIATE_VERSION}*")):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def apply_listen_patches(source_dir: Path) -> None:
    """Patch a writable copy of the Weaviate module in place (see LISTEN_PATCHES)."""
    texts: dict[str, str] = {}
    for relative, find, replace in LISTEN_PATCHES:
        text = texts.get(relative) or (source_dir / relative).read_text(encoding="utf-8")
        if text.count(find) != 1:
            raise WeaviateBinaryError(
                f"{relative} of Weaviate v{WEAVIATE_VERSION}: expected the text {find!r} once, "
                f"found it {text.count(find)} times; the loopback patch needs updating"
            )
        texts[relative] = text.replace(find, replace, 1)
    for relative, text in texts.items():
        (source_dir / relative).write_text(text, encoding="utf-8")


def build_with_go(settings: Settings) -> Path:
    """Build the pinned server from a copy of its module source with the loopback patches
    (CGO off, as upstream builds it) into the project cache. Go refuses to overlay files of
    the module cache, hence the copy (~60 MB, removed afterwards)."""
    go = shutil.which("go")
    if go is None:
        raise WeaviateBinaryError("Go is not installed")
    target = go_binary_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly")

    def run(args: list[str], cwd: str | None = None) -> str:
        result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise WeaviateBinaryError(
                f"`{' '.join(args)}` failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-2000:]}"
            )
        return result.stdout

    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait and reuse it
        if target.exists():
            return target
        module_dir = Path(json.loads(run([go, "mod", "download", "-json", GO_MODULE]))["Dir"])
        _build_patched(go, module_dir, target, run)
    return target


def _build_patched(go: str, module_dir: Path, target: Path, run) -> None:
    with tempfile.TemporaryDirectory(prefix="weaviate-src-") as tmp:
        source = Path(tmp) / "weaviate"
        shutil.copytree(module_dir, source)
        for folder, _, files in os.walk(source):  # the module cache is read-only
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        apply_listen_patches(source)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            run([go, "build", "-o", str(partial), "./cmd/weaviate-server"], cwd=str(source))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)


def download_embedded(settings: Settings) -> Path:
    """Let weaviate-client's embedded mode download the pinned release (needs internet)."""
    from weaviate.embedded import EmbeddedOptions, EmbeddedV4

    folder = embedded_binary_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedV4(EmbeddedOptions(version=WEAVIATE_VERSION, binary_path=str(folder)))
    try:
        embedded.ensure_weaviate_binary_exists()
    except Exception as exc:  # network errors come in many types
        raise WeaviateBinaryError(
            f"weaviate-client embedded download of v{WEAVIATE_VERSION} failed: {exc}"
        ) from exc
    return Path(embedded._weaviate_binary_path)


def ensure_binary(settings: Settings) -> Path:
    """Return a runnable weaviate-server, building or downloading it the first time. The
    loopback-patched Go build is preferred; an unpatched binary is used (with a warning) only
    when no Go toolchain can build the patched one."""
    found = find_binary(settings, patched_only=True)
    if found is not None:
        return found
    errors: list[str] = []
    unpatched = find_binary(settings)
    if unpatched is not None:
        try:
            return build_with_go(settings)
        except WeaviateBinaryError as exc:
            warnings.warn(
                f"using {unpatched}, which binds gRPC and the cluster data port on all "
                f"interfaces: the loopback build failed ({exc})",
                stacklevel=2,
            )
            return unpatched
    order = {
        "auto": (build_with_go, download_embedded),
        "binary": (build_with_go,),
        "embedded": (download_embedded,),
    }[settings.weaviate_mode]
    for attempt in order:
        try:
            return attempt(settings)
        except WeaviateBinaryError as exc:
            errors.append(str(exc))
    raise WeaviateBinaryError(
        "no Weaviate server binary: "
        + "; ".join(errors)
        + ". Install Go (https://go.dev/dl) and rerun `make setup`, allow the embedded download, "
        "or point DUALENGINE_WEAVIATE_URL at a running Weaviate."
    )


API_KEY_USER = "dualengine"


def auth_environment(api_key: str, user: str = API_KEY_USER) -> dict[str, str]:
    """API-key authentication, anonymous access off; the key's user is the only (admin) user."""
    if not api_key or "," in api_key:
        raise ValueError("the Weaviate API key must be a non-empty string without commas")
    return {
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
        "AUTHENTICATION_APIKEY_ENABLED": "true",
        "AUTHENTICATION_APIKEY_ALLOWED_KEYS": api_key,
        "AUTHENTICATION_APIKEY_USERS": user,
        "AUTHORIZATION_ADMINLIST_ENABLED": "true",
        "AUTHORIZATION_ADMINLIST_USERS": user,
    }


def server_environment(
    data_dir: Path, http_port: int, grpc_port: int, base_port: int, api_key: str
) -> dict[str, str]:
    """Environment for one local node on 127.0.0.1 with API-key auth; base_port..+4 for
    gossip/data/raft/raft-RPC/profiling."""
    return {
        **auth_environment(api_key),
        "DEFAULT_VECTORIZER_MODULE": "none",
        "ENABLE_MODULES": "",
        "PERSISTENCE_DATA_PATH": str(data_dir),
        "QUERY_DEFAULTS_LIMIT": "25",
        "CLUSTER_HOSTNAME": "dualengine-node1",
        "CLUSTER_BIND_ADDR": "127.0.0.1",
        "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
        "CLUSTER_IN_LOCALHOST": "true",
        "CLUSTER_GOSSIP_BIND_PORT": str(base_port),
        "CLUSTER_DATA_BIND_PORT": str(base_port + 1),
        "RAFT_PORT": str(base_port + 2),
        "RAFT_INTERNAL_RPC_PORT": str(base_port + 3),
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "RAFT_JOIN": "dualengine-node1",
        "GO_PROFILING_PORT": str(base_port + 4),
        "GO_PROFILING_DISABLE": "true",  # the pprof listener binds every interface
        "GRPC_PORT": str(grpc_port),
        "GRPC_BIND_ADDR": "127.0.0.1",  # honoured by the loopback build only
        "DISABLE_TELEMETRY": "true",
        "LOG_LEVEL": "warning",
        "PROMETHEUS_MONITORING_ENABLED": "false",
    }


NODE_PORTS = 7  # per node: gossip, data, raft, raft RPC, profiling, HTTP, gRPC


def node_hostname(index: int) -> str:
    return f"dualengine-node{index}"


def cluster_environment(index: int, nodes: int, cluster_base: int) -> dict[str, str]:
    """What makes node `index` of `nodes` (on 127.0.0.1) one cluster with the others: its
    name, the Raft voters with their ports, and node 1's gossip port to join. Node i's ports
    start at cluster_base + NODE_PORTS * (i - 1) in the order of `server_environment`."""

    def base(i: int) -> int:
        return cluster_base + NODE_PORTS * (i - 1)

    env = {
        "CLUSTER_HOSTNAME": node_hostname(index),
        "RAFT_JOIN": ",".join(f"{node_hostname(i)}:{base(i) + 2}" for i in range(1, nodes + 1)),
        "RAFT_BOOTSTRAP_EXPECT": str(nodes),
        # Weaviate's production advice: tolerate slow heartbeats (a busy host) without
        # needless elections; a dead leader is still replaced within seconds
        "RAFT_TIMEOUTS_MULTIPLIER": "5",
    }
    if index > 1:
        env["CLUSTER_JOIN"] = f"127.0.0.1:{base(1)}"
    return env


def server_command(binary: Path, http_port: int) -> list[str]:
    return [str(binary), "--host", "127.0.0.1", "--port", str(http_port), "--scheme", "http"]
