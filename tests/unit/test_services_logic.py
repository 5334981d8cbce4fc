"""Endpoint resolution and the Weaviate node environment (pure logic)."""

from pathlib import Path

from dualengine import services
from dualengine.settings import Settings
from dualengine.weaviate_server import server_environment


def test_environment_url_is_external_unless_it_is_the_managed_address(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path, prefect_port=4321, mlflow_port=5432)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4321/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    endpoints = services.resolve_endpoints(settings)
    assert endpoints.external == ["mlflow"]
    assert endpoints.mlflow_tracking_uri == "http://mlflow.example:5000"


def test_recorded_state_is_used_when_environment_is_silent(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(state_dir=tmp_path)
    services.write_state(settings, {"weaviate": {"url": "http://127.0.0.1:9999", "grpc_port": 7}})
    endpoints = services.resolve_endpoints(settings)
    assert endpoints.weaviate_http == "http://127.0.0.1:9999"
    assert endpoints.weaviate_grpc_port == 7 and endpoints.external == []
    assert endpoints.weaviate_host_port == ("127.0.0.1", 9999)


def test_weaviate_url_setting_marks_weaviate_external(tmp_path):
    settings = Settings(
        state_dir=tmp_path, weaviate_url="https://cluster.example:443/", weaviate_grpc_port=443
    )
    endpoints = services.resolve_endpoints(settings)
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


def test_free_port_block_is_free():
    base = services.free_port_block(5)
    assert all(services.port_is_free(base + i) for i in range(5))
