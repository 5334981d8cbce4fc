"""Cluster shapes without servers: Weaviate node environments, service order, replication,
the S3 server's listeners, and what `services up` records for later commands."""

from pathlib import Path

import pytest

from dualengine import endpoints, object_store, services, weaviate_server
from dualengine.settings import Settings
from tasks.index_store import replication_config, replication_factor


def node_env(index, nodes=3, base=30000):
    env = weaviate_server.server_environment(
        Path("/tmp/x"),
        8080 + index,
        50050 + index,
        base + weaviate_server.NODE_PORTS * (index - 1),
        "test-key",
    )
    return env | weaviate_server.cluster_environment(index, nodes, base)


def test_three_nodes_have_distinct_ports_one_raft_voter_list_and_join_node_one():
    envs = [node_env(i) for i in (1, 2, 3)]
    port_keys = [
        "CLUSTER_GOSSIP_BIND_PORT",
        "CLUSTER_DATA_BIND_PORT",
        "RAFT_PORT",
        "RAFT_INTERNAL_RPC_PORT",
        "GO_PROFILING_PORT",
        "GRPC_PORT",
    ]
    ports = [int(e[k]) for e in envs for k in port_keys]
    assert len(ports) == len(set(ports))
    assert {e["RAFT_JOIN"] for e in envs} == {
        "dualengine-node1:30002,dualengine-node2:30009,dualengine-node3:30016"
    }
    assert [e["CLUSTER_HOSTNAME"] for e in envs] == [f"dualengine-node{i}" for i in (1, 2, 3)]
    assert all(e["RAFT_BOOTSTRAP_EXPECT"] == "3" for e in envs)
    assert all(e["RAFT_TIMEOUTS_MULTIPLIER"] == "5" for e in envs)
    assert "CLUSTER_JOIN" not in envs[0]
    assert envs[1]["CLUSTER_JOIN"] == envs[2]["CLUSTER_JOIN"] == "127.0.0.1:30000"
    for env in envs:  # each node's Raft port is the one the voter list names for it
        assert f"{env['CLUSTER_HOSTNAME']}:{env['RAFT_PORT']}" in env["RAFT_JOIN"]
        assert env["CLUSTER_BIND_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize(("nodes", "factor"), [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_replication_factor_is_three_on_a_cluster_of_three_or_more(nodes, factor):
    assert replication_factor(nodes) == factor
    config = replication_config(nodes)
    assert (config is None) == (nodes == 1)
    if config is not None:
        assert config.factor == factor


def test_services_start_in_dependency_order():
    one = Settings()
    assert services.managed_names(one) == ("prefect", "mlflow", "weaviate")
    team = Settings(mlflow_backend="postgres", weaviate_nodes=3)
    names = services.managed_names(team)
    assert names.index("postgres") < names.index("mlflow") > names.index("s3")
    assert names[-3:] == ("weaviate", "weaviate-node2", "weaviate-node3")


def test_consistency_defaults_to_quorum_and_refuses_unknown_levels():
    assert Settings().consistency == "QUORUM"
    assert Settings(weaviate_consistency="ONE").consistency == "ONE"
    with pytest.raises(ValueError):
        Settings(weaviate_consistency="MOST")
    with pytest.raises(ValueError):
        Settings(weaviate_nodes=0)


def test_later_commands_see_the_recorded_shape_unless_the_environment_sets_it(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("DUALENGINE_WEAVIATE_NODES", raising=False)
    monkeypatch.delenv("DUALENGINE_MLFLOW_BACKEND", raising=False)
    settings = Settings(state_dir=tmp_path)
    endpoints.write_state(settings, {"shape": {"weaviate_nodes": 3, "mlflow_backend": "postgres"}})
    seen = services.with_recorded_shape(settings)
    assert (seen.weaviate_nodes, seen.mlflow_backend) == (3, "postgres")
    monkeypatch.setenv("DUALENGINE_WEAVIATE_NODES", "1")
    assert services.with_recorded_shape(settings).weaviate_nodes == 1


def test_s3_server_listens_only_on_loopback_on_its_own_ports(tmp_path):
    command = object_store.server_command(Path("weed"), tmp_path, 41000)
    ports = [a.split("=", 1)[1] for a in command if ".port" in a and a.split("=")[1] != "0"]
    assert sorted(ports) == [str(41000 + i) for i in range(object_store.PORTS)]
    assert "-ip.bind=127.0.0.1" in command and "-s3" in command
    assert object_store.s3_port(41000) == 41006


def test_s3_credentials_are_generated_once_and_private(tmp_path):
    settings = Settings(state_dir=tmp_path)
    first = object_store.credentials(settings)
    assert first == object_store.credentials(settings)
    assert len(first["AWS_SECRET_ACCESS_KEY"]) >= 30
    for name in ("s3-access-key-id", "s3-secret-access-key"):
        assert (tmp_path / "secrets" / name).stat().st_mode & 0o777 == 0o600
    assert first != object_store.credentials(Settings(state_dir=tmp_path / "other"))


def test_schema_calls_wait_out_a_leader_election_but_not_a_client_error(monkeypatch):
    import httpx
    from weaviate.exceptions import UnexpectedStatusCodeError

    from tasks import index_versions

    monkeypatch.setattr(index_versions.time, "sleep", lambda s: None)

    def failing(status, times):
        calls = []

        def call():
            calls.append(1)
            if len(calls) <= times:
                raise UnexpectedStatusCodeError(
                    "alias", httpx.Response(status, json={"error": [{"message": "leader"}]})
                )
            return "ok"

        return call, calls

    call, calls = failing(500, 2)
    assert index_versions.through_leader(call) == "ok" and len(calls) == 3
    call, calls = failing(404, 1)
    with pytest.raises(UnexpectedStatusCodeError):
        index_versions.through_leader(call)
    assert len(calls) == 1
    call, calls = failing(503, 10**6)
    with pytest.raises(UnexpectedStatusCodeError):
        index_versions.through_leader(call, wait=0.0)
    assert len(calls) == index_versions.LEADER_MIN_ATTEMPTS


def test_a_schema_call_that_hangs_past_the_wait_is_still_retried(monkeypatch):
    """CI, stop 17: GET /v1/aliases hung for the client's whole 60 s query timeout after a
    node was killed, which used up the 60 s wait in one attempt; the retry must still come."""
    from weaviate.exceptions import WeaviateTimeoutError

    from tasks import index_versions

    clock = [0.0]
    monkeypatch.setattr(index_versions.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(index_versions.time, "sleep", lambda s: None)
    calls = []

    def call():
        calls.append(1)
        if len(calls) == 1:
            clock[0] += 61.0  # one hung request outlasts the whole wait
            raise WeaviateTimeoutError("Could not get alias ClusterTest")
        return "ok"

    assert index_versions.through_leader(call, wait=60.0) == "ok" and len(calls) == 2


def test_seaweedfs_inner_ports_get_jwt_keys_and_a_private_grpc_certificate(tmp_path):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from dualengine import seaweedfs_security

    settings = Settings(state_dir=tmp_path)
    env = seaweedfs_security.environment(settings)
    assert env == seaweedfs_security.environment(settings)  # made once
    keys = [env[var] for var in seaweedfs_security.JWT_KEYS]
    assert len(set(keys)) == 4 and all(len(k) >= 32 for k in keys)
    for component in ("MASTER", "VOLUME", "FILER", "S3", "CLIENT"):
        assert env[f"WEED_GRPC_{component}_CERT"] and env[f"WEED_GRPC_{component}_KEY"]
    folder = Path(env["WEED_GRPC_CA"]).parent
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "node.crt", "node.key"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())
    assert folder.stat().st_mode & 0o777 == 0o700
    ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    node = x509.load_pem_x509_certificate((folder / "node.crt").read_bytes())
    node.verify_directly_issued_by(ca)
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
    other = seaweedfs_security.environment(Settings(state_dir=tmp_path / "other"))
    assert other["WEED_JWT_SIGNING_KEY"] != env["WEED_JWT_SIGNING_KEY"]
