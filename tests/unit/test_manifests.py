"""infra/: the compose file and the Kubernetes manifests are well-formed, wire every setting and
hold no literal secret. Kubernetes objects are checked against the bundled API schemas."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dualengine.settings import WEAVIATE_VERSION, Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "compose" / "docker-compose.yaml"

# Settings that only `dualengine services up` uses on one machine (a deployment points the
# clients at its servers instead), or that are no environment variable at all.
LOCAL_ONLY = {
    "DUALENGINE_PREFECT_PORT": "local Prefect server port",
    "DUALENGINE_MLFLOW_PORT": "local MLflow server port",
    "DUALENGINE_WEAVIATE_PORT": "local Weaviate node port",
    "DUALENGINE_MLFLOW_BACKEND": "which store `services up` starts",
    "DUALENGINE_TRAINING_OVERRIDES": "set in code for one run, not from the environment",
}
# the clients' endpoints and the service credentials (Weaviate API key, MLflow basic-auth,
# Prefect auth string)
CLIENT_VARS = {
    "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
}
SECRETISH = re.compile(r"PASSWORD|SECRET|API_KEY|AUTH_STRING|ALLOWED_KEYS|ACCESS_KEY")


def required_env() -> set[str]:
    """DUALENGINE_<FIELD> of every setting, except one that also reads a client variable
    (e.g. MLFLOW_TRACKING_USERNAME): that one is wired under the client name."""
    from_settings = set()
    for name, field in Settings.model_fields.items():
        aliases = set(getattr(field.validation_alias, "choices", None) or [])
        if not aliases & CLIENT_VARS:
            from_settings.add(f"DUALENGINE_{name.upper()}")
    return (from_settings - set(LOCAL_ONLY)) | CLIENT_VARS


def k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def env_file_keys(path: Path) -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in path.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


def containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return pod.get("initContainers", []) + pod["containers"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def configmap() -> dict:
    (doc,) = [
        d
        for _, d in k8s_documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "dualengine-env"
    ]
    return doc["data"]


# ---------------------------------------------------------------- Kubernetes


def test_every_kubernetes_object_validates_against_its_schema():
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    docs = k8s_documents()
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "Service", "Job", "StatefulSet", "ConfigMap", "Namespace"} <= kinds
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata'].get('name')}: {exc.message}")


def test_the_schema_check_rejects_a_broken_object():
    import kubernetes_validate

    (_, job) = next((n, d) for n, d in k8s_documents() if d["kind"] == "Job")
    broken = yaml.safe_load(yaml.safe_dump(job))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": ["8 GPUs"]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest_and_the_secret_keys():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    (generator,) = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    keys = env_file_keys(K8S / "secrets.env.example")
    referenced = set()
    for _, doc in k8s_documents():
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            for container in containers(doc):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == "dualengine-secrets", env
                        referenced.add(ref["key"])
    assert referenced <= keys, (
        f"secretKeyRef keys missing from secrets.env.example: {referenced - keys}"
    )


def test_no_literal_secret_in_a_kubernetes_container():
    for name, doc in k8s_documents():
        if doc["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        for container in containers(doc):
            for env in container.get("env", []):
                if SECRETISH.search(env["name"]) and "value" in env:
                    assert "$(" in env["value"], f"{name}: {env['name']} is a literal"
    assert (
        not (K8S / "secrets.env").exists()
        or "secrets.env" in (INFRA.parent / ".gitignore").read_text()
    )


@pytest.mark.parametrize("workload", ["model.yaml", "training-job.yaml"])
def test_every_setting_is_wired_in_kubernetes(workload, configmap):
    docs = list(yaml.safe_load_all((K8S / workload).read_text()))
    (pod_owner,) = [d for d in docs if d["kind"] in {"Deployment", "Job"}]
    container = pod_owner["spec"]["template"]["spec"]["containers"][0]
    assert {"configMapRef": {"name": "dualengine-env"}} in container["envFrom"]
    wired = set(configmap) | {e["name"] for e in container["env"]}
    missing = required_env() - wired
    assert not missing, f"infra/k8s/{workload}: not wired: {sorted(missing)}"


def test_training_job_runs_ddp_on_every_gpu_it_asks_for():
    job = yaml.safe_load((K8S / "training-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    config = args[args.index("--accelerate-config") + 1]
    assert config == "infra/accelerate/multi_gpu_ddp.yaml"
    accelerate = yaml.safe_load((INFRA.parent / config).read_text())
    assert accelerate["distributed_type"] == "MULTI_GPU"
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert int(args[args.index("--num-processes") + 1]) == gpus


def test_helm_values_pin_the_cluster_shape():
    weaviate = yaml.safe_load((INFRA / "helm" / "weaviate-values.yaml").read_text())
    assert weaviate["replicas"] == 3
    assert str(weaviate["image"]["tag"]) == WEAVIATE_VERSION
    assert weaviate["authentication"]["anonymous_access"]["enabled"] is False
    assert weaviate["envSecrets"]["AUTHENTICATION_APIKEY_ALLOWED_KEYS"] == "dualengine-secrets"
    worker = yaml.safe_load((INFRA / "helm" / "prefect-worker-values.yaml").read_text())
    assert worker["worker"]["config"]["type"] == "kubernetes"
    assert worker["worker"]["apiConfig"] == "selfHostedServer"
    assert worker["worker"]["basicAuth"]["existingSecret"]


# ---------------------------------------------------------------- compose


def test_compose_has_every_engine_with_healthchecks_and_ordering(compose):
    services = compose["services"]
    assert {
        "postgres",
        "s3",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "model",
        "weaviate-node1",
        "weaviate-node2",
        "weaviate-node3",
    } <= set(services)
    declared_volumes = set(compose["volumes"])
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared_volumes, f"{name}: volume {source} not declared"
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"]
        assert "image" in service, name
    for node in ("weaviate-node1", "weaviate-node2", "weaviate-node3"):
        assert services[node]["image"].endswith(f":{WEAVIATE_VERSION}")
        env = services[node]["environment"]
        assert env["RAFT_BOOTSTRAP_EXPECT"] == "3"
        assert env["CLUSTER_HOSTNAME"] == node
        assert env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert services["weaviate-node2"]["environment"]["CLUSTER_JOIN"] == "weaviate-node1:7100"


@pytest.mark.parametrize("service", ["prefect-worker", "model"])
def test_every_setting_is_wired_in_compose(compose, service):
    env = compose["services"][service]["environment"]
    missing = required_env() - set(env)
    assert not missing, f"compose service {service}: not wired: {sorted(missing)}"


def test_compose_secrets_come_from_the_env_file(compose):
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert used <= env_file_keys(INFRA / "compose" / "secrets.env.example")
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if SECRETISH.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), f"{name}: {key}"
    for url in re.findall(r"postgresql\+\w+://[^\s\"']+", text):
        assert ":${POSTGRES_PASSWORD:?" in url, url
