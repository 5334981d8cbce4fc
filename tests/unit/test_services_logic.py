"""Endpoint resolution and the Weaviate node environment (pure logic)."""

from pathlib import Path

import pytest

from dualengine.endpoints import free_port_block, port_is_free, resolve_endpoints, write_state
from dualengine.settings import Settings
from dualengine.weaviate_server import server_environment


def test_environment_url_is_external_unless_it_is_the_managed_address(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path, prefect_port=4321, mlflow_port=5432)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4321/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    endpoints = resolve_endpoints(settings)
    assert endpoints.external == ["mlflow"]
    assert endpoints.mlflow_tracking_uri == "http://mlflow.example:5000"


def test_recorded_state_is_used_when_environment_is_silent(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(state_dir=tmp_path)
    write_state(settings, {"weaviate": {"url": "http://127.0.0.1:9999", "grpc_port": 7}})
    endpoints = resolve_endpoints(settings)
    assert endpoints.weaviate_http == "http://127.0.0.1:9999"
    assert endpoints.weaviate_grpc_port == 7 and endpoints.external == []
    assert endpoints.weaviate_host_port == ("127.0.0.1", 9999)


def test_weaviate_url_setting_marks_weaviate_external(tmp_path):
    settings = Settings(
        state_dir=tmp_path, weaviate_url="https://cluster.example:443/", weaviate_grpc_port=443
    )
    endpoints = resolve_endpoints(settings)
    assert "weaviate" in endpoints.external
    assert endpoints.weaviate_http == "https://cluster.example:443"


def test_node_ports_are_distinct_and_loopback_only():
    env = server_environment(Path("/data"), 8080, 50051, 7100, "key")
    ports = [
        env[k]
        for k in (
            "CLUSTER_GOSSIP_BIND_PORT",
            "CLUSTER_DATA_BIND_PORT",
            "RAFT_PORT",
            "RAFT_INTERNAL_RPC_PORT",
            "GO_PROFILING_PORT",
            "GRPC_PORT",
        )
    ]
    assert len(set(ports)) == len(ports)
    assert env["CLUSTER_BIND_ADDR"] == "127.0.0.1" and env["DEFAULT_VECTORIZER_MODULE"] == "none"


def test_free_ports_are_distinct_and_below_the_ephemeral_range():
    from dualengine.endpoints import ephemeral_port_range, free_port

    low, _ = ephemeral_port_range()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == 300  # never the same port twice, even before anyone binds it
    assert all(p < low for p in ports)


def test_free_port_block_is_free():
    base = free_port_block(5)
    assert all(port_is_free(base + i) for i in range(5))


def test_listen_patches_apply_once_and_refuse_a_changed_source(tmp_path):
    from dualengine import weaviate_server

    originals = {
        "adapters/handlers/grpc/server.go": 'import (\n\t"fmt"\n)\n'
        'func StartAndListen() {\n\tlis, err := net.Listen("tcp", fmt.Sprintf(":%d",\n'
        "\t\tstate.ServerConfig.Config.GRPC.Port))\n}\n",
        "adapters/handlers/rest/clusterapi/serve.go": 'import (\n\t"fmt"\n)\n'
        'var s = http.Server{\n\t\t\tAddr:      fmt.Sprintf(":%d", port),\n}\n',
    }
    for relative, text in originals.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    weaviate_server.apply_listen_patches(tmp_path)
    grpc = (tmp_path / "adapters/handlers/grpc/server.go").read_text()
    data = (tmp_path / "adapters/handlers/rest/clusterapi/serve.go").read_text()
    assert 'os.Getenv("GRPC_BIND_ADDR")' in grpc and '\t"os"\n' in grpc
    assert "Cluster.BindAddr" in data and '\t"net"\n' in data
    assert 'Sprintf(":%d"' not in grpc + data
    with pytest.raises(weaviate_server.WeaviateBinaryError, match="patch needs updating"):
        weaviate_server.apply_listen_patches(tmp_path)  # already patched: the text is gone


def test_node_binds_loopback_and_keeps_pprof_off():
    env = server_environment(Path("/data"), 8080, 50051, 7100, "key")
    assert env["GRPC_BIND_ADDR"] == env["CLUSTER_BIND_ADDR"] == "127.0.0.1"
    assert env["GO_PROFILING_DISABLE"] == "true"
    assert env["PROMETHEUS_MONITORING_ENABLED"] == "false"
