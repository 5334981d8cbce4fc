"""The hybrid system as an MLflow pyfunc model: one registered version pins a generator version
(its adapter is packed inside) and an index alias, and answers like `dualengine ask`.

    dualengine register-hybrid     # the promote flow does this itself after a promotion
    dualengine serve-model --port 5055   # mlflow models serve -m models:/dualengine-hybrid@champion

Request (`POST /invocations`):
    {"dataframe_records": [{"question": "...", "groups": ["public"], "conflict_check": false}]}
Response: {"predictions": [{answer, answered, citations[...], timings_ms, conflict, ...}]}

The base and embedding models are referenced, not copied (hundreds of MB): the served process
uses the paths recorded at registration unless DUALENGINE_BASE_MODEL /
DUALENGINE_EMBEDDING_MODEL say otherwise; likewise Weaviate (DUALENGINE_WEAVIATE_URL,
DUALENGINE_WEAVIATE_GRPC_PORT) and the query log (DUALENGINE_QUERY_LOG_URL). `groups` are the
caller's access groups (a list of names; none → params.yaml `retrieval.anonymous_groups`; a
string, an empty list or a wildcard → 400, see dualengine/resolve.py): put the server behind a
gateway that sets them from the caller's identity; the access filter is applied inside Weaviate
on every query.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from dualengine.models import base_model_path, embedding_model_path
from dualengine.settings import PROJECT_ROOT, Settings

ARTIFACT_PATH = "hybrid"
ENV_OVERRIDES = {
    "weaviate_url": "DUALENGINE_WEAVIATE_URL",
    "weaviate_grpc_port": "DUALENGINE_WEAVIATE_GRPC_PORT",
    "query_log_url": "DUALENGINE_QUERY_LOG_URL",
    "base_model": "DUALENGINE_BASE_MODEL",
    "embedding_model": "DUALENGINE_EMBEDDING_MODEL",
}


class HybridPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the generator once per process; `predict` answers a batch of questions."""

    def load_context(self, context) -> None:
        from dualengine.api import engine_for
        from tasks.generation import load_generator
        from tasks.hardware import configure_threads

        config = dict(context.model_config or {})
        for key, env in ENV_OVERRIDES.items():
            if os.environ.get(env):
                config[key] = os.environ[env]
        settings = Settings(
            params_file=Path(context.artifacts["params"]),
            profile=config["profile"],
            weaviate_url=config["weaviate_url"],
            weaviate_grpc_port=int(config["weaviate_grpc_port"]),
            query_log_url=config.get("query_log_url"),
            base_model=config["base_model"],
            embedding_model=config["embedding_model"],
        )
        adapter = context.artifacts.get("adapter")
        configure_threads(settings.threads())
        generator = load_generator(
            config["base_model"], adapter, settings.context_length(), settings.quantize()
        )
        self.engine = engine_for(
            settings,
            generator,
            str(config["generator_version"]),
            caller="pyfunc",
            log_queries=bool(config.get("log_queries", True)),
        )

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        """Every record is checked before any is answered: a malformed one (groups not a list
        of group names, no question) fails the whole request with HTTP 400."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        from dualengine.resolve import AccessGroupsError, caller_groups

        rows = _records(model_input)
        requests = []
        for number, row in enumerate(rows):
            try:
                groups = caller_groups(row.get("groups"), self.engine.config.anonymous_groups)
            except AccessGroupsError as exc:
                raise MlflowException(f"record {number}: {exc}", INVALID_PARAMETER_VALUE) from exc
            question = row.get("question")
            if not isinstance(question, str) or not question.strip():
                raise MlflowException(
                    f"record {number}: 'question' must be a non-empty string",
                    INVALID_PARAMETER_VALUE,
                )
            check = row.get("conflict_check")
            check = None if check is None or check != check else bool(check)  # NaN → default
            requests.append((question, groups, check))
        # the whole frame at once: its generations run as batches (see HybridEngine.ask_many)
        return [a.as_dict() for a in self.engine.ask_many(requests)]


def _records(model_input) -> list[dict[str, Any]]:
    if hasattr(model_input, "to_dict"):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        return [model_input]
    return list(model_input)


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "question"),
                # Any, not Array(string): MLflow's schema would turn [7] into ["7"] and fail a
                # batch where some records have no groups; dualengine.resolve decides instead.
                ColSpec(AnyType(), "groups", required=False),
                ColSpec("boolean", "conflict_check", required=False),
            ]
        )
    )


def register_hybrid(
    settings: Settings,
    generator_version: str,
    adapter_dir: str | None,
    base_model: str | None = None,
    set_champion: bool = True,
) -> str:
    """Log and register a hybrid version pinning this generator version and the index alias."""
    from dualengine.endpoints import resolve_endpoints
    from dualengine.model_signing import SIGNATURE_TAG, download_signed
    from dualengine.resolve import index_alias, live_index
    from dualengine.weaviate_client import weaviate_client
    from tasks import registry, tracking

    cfg = settings.config()
    name = cfg.registry.hybrid_model_name
    alias = index_alias(settings)
    endpoints = resolve_endpoints(settings)
    with weaviate_client(settings) as client:
        collection = live_index(client, alias, required=False)
    config = {
        "generator_model": cfg.registry.model_name,
        "generator_version": generator_version,
        "index_alias": alias,
        "profile": settings.profile,
        "base_model": base_model or base_model_path(settings),
        "embedding_model": embedding_model_path(settings),
        "weaviate_url": endpoints.weaviate_http,
        "weaviate_grpc_port": endpoints.weaviate_grpc_port,
        "query_log_url": settings.query_log,
        "log_queries": cfg.answer.log_queries,
    }
    artifacts = {"params": str(settings.params_path)}
    if adapter_dir:
        artifacts["adapter"] = adapter_dir
    tracking.use_experiment("dualengine-serving")
    registry.ensure_registered_model(
        name, "The hybrid answer system: a pinned generator version + the live index alias."
    )
    with mlflow.start_run(run_name=f"hybrid-g{generator_version}") as run:
        mlflow.log_params({k: v for k, v in config.items() if k != "query_log_url"})
        mlflow.set_tags({"index_collection_at_registration": collection or "-"})
        info = mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=HybridPyfunc(),
            artifacts=artifacts,
            model_config=config,
            code_paths=[str(PROJECT_ROOT / "dualengine"), str(PROJECT_ROOT / "tasks")],
            signature=signature(),
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                "torch",
                "transformers",
                "peft",
                "sentence-transformers",
                "weaviate-client",
                "sqlalchemy",
                "pydantic-settings",
            ],
        )
    version = mlflow.register_model(
        info.model_uri,
        name,
        tags={
            "generator_version": generator_version,
            "index_alias": alias,
            "index_collection_at_registration": collection or "-",
            "run_id": run.info.run_id,
            # what serve-model checks before loading: only signed versions are served
            SIGNATURE_TAG: download_signed(settings, info.model_uri, name),
        },
    )
    if set_champion:
        registry.set_alias(name, registry.CHAMPION, str(version.version))
    return str(version.version)


def model_uri(settings: Settings, ref: str = "champion") -> str:
    name = settings.config().registry.hybrid_model_name
    return f"models:/{name}/{ref}" if ref.isdigit() else f"models:/{name}@{ref}"


def serve_command(
    settings: Settings,
    port: int,
    ref: str = "champion",
    workers: int = 1,
    timeout: int = 300,
    host: str = "127.0.0.1",
) -> list[str]:
    """The `mlflow models serve` command line for a hybrid version (local environment).

    The version behind `ref` is downloaded and its registration signature checked first
    (ModelSignatureError when it was not registered by this project or was changed since);
    the command serves that verified local copy, so a later alias move cannot swap it."""
    import sys

    from dualengine.model_signing import verified_model_dir

    name = settings.config().registry.hybrid_model_name
    _, folder = verified_model_dir(settings, name, ref)
    return [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        str(folder),
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
        "--workers",
        str(workers),
        "--timeout",
        str(timeout),
    ]


def serve_env() -> dict[str, str]:
    """The environment for `mlflow models serve`: this interpreter's bin folder first on PATH
    (MLflow starts `uvicorn` by name)."""
    import sys

    env = os.environ.copy()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


__all__ = ["HybridPyfunc", "model_uri", "register_hybrid", "serve_command", "serve_env"]
