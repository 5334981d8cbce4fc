"""Every socket the started stack listens on (Prefect, MLflow and its workers, every Weaviate
port: HTTP, gRPC, gossip TCP+UDP, data, Raft, Raft RPC) is bound to the loopback address."""

import psutil
import pytest

pytestmark = pytest.mark.integration

LOOPBACK = {"127.0.0.1", "::1"}


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def listening_sockets(pid: int) -> list[tuple[str, str, int, int]]:
    """(kind, address, port, pid) of every TCP listener and bound UDP socket of pid's tree."""
    found = []
    for process in _tree(pid):
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for conn in connections:
            tcp = conn.type.name == "SOCK_STREAM"
            if (tcp and conn.status == psutil.CONN_LISTEN) or (not tcp and not conn.raddr):
                found.append(("tcp" if tcp else "udp", conn.laddr.ip, conn.laddr.port, process.pid))
    return found


def test_no_service_of_the_stack_listens_beyond_loopback(stack, settings):
    from dualengine import endpoints, services, weaviate_server

    state = endpoints.read_state(settings)
    names = services.managed_names(settings)  # every node and store this stack started
    by_service = {name: listening_sockets(state[name]["pid"]) for name in names}
    assert all(by_service.values()), by_service  # every service was found listening
    assert {port for _, _, port, _ in by_service["weaviate"]} >= {
        state["weaviate"]["port"],
        state["weaviate"]["grpc_port"],
    }
    assert len({(k, p) for k, _, p, _ in by_service["weaviate"]}) >= 6  # HTTP, gRPC, cluster
    binary = weaviate_server.find_binary(settings)
    if not weaviate_server.is_loopback_build(binary, settings):
        pytest.xfail(f"{binary} is not the loopback build: its gRPC port binds every interface")
    wildcard = [
        (name, *sock)
        for name, sockets in by_service.items()
        for sock in sockets
        if sock[1] not in LOOPBACK
    ]
    assert wildcard == [], f"bound beyond loopback (service, kind, address, port, pid): {wildcard}"


def test_webhook_receiver_binds_loopback(settings):
    from dualengine.endpoints import free_port
    from dualengine.webhook_receiver import start_receiver

    server = start_receiver(settings, port=free_port())
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
