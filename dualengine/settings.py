"""Configuration in one place: endpoints and paths from the environment, tunables in params.yaml."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from dualengine.config import Config, Profile

WEAVIATE_VERSION = "1.38.11"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_cache_dir() -> Path:
    """User-level cache shared by every checkout: built binaries and converted models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dualengine"


def _credential(name: str, client_variable: str, description: str | None = None) -> Any:
    """An optional credential read from DUALENGINE_<NAME>, else from the client library's own
    variable (MLflow's or Prefect's), so either spelling configures it."""
    return Field(
        default=None,
        validation_alias=AliasChoices(f"DUALENGINE_{name.upper()}", client_variable),
        description=description,
    )


class Settings(BaseSettings):
    """Runtime settings; every field can be set as DUALENGINE_<FIELD> in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="DUALENGINE_", extra="ignore", populate_by_name=True
    )

    home: Path = Field(default=PROJECT_ROOT, description="project folder (params.yaml, data/)")
    state_dir: Path | None = Field(default=None, description="PID files, logs, service state")
    cache_dir: Path = Field(default_factory=default_cache_dir)
    params_file: Path | None = None
    profile: Literal["tiny", "default", "gpu"] = "default"

    base_model: str | None = Field(
        default=None, description="Hugging Face id or local path; default: SmolLM2-135M-Instruct"
    )
    embedding_model: str | None = Field(
        default=None, description="sentence-transformers id or path; default: all-MiniLM-L6-v2"
    )

    weaviate_url: str | None = Field(
        default=None, description="an existing Weaviate (http://host:port); not started then"
    )
    weaviate_grpc_port: int | None = None
    weaviate_api_key: str | None = Field(
        default=None, description="Weaviate API key; default: the one `services up` generated"
    )
    weaviate_mode: Literal["auto", "binary", "embedded"] = "auto"
    weaviate_nodes: int = Field(
        default=1, ge=1, le=9, description="Weaviate nodes (`services up`; replication factor)"
    )
    weaviate_consistency: Literal["ONE", "QUORUM", "ALL"] | None = Field(
        default=None, description="read/write consistency level; default QUORUM"
    )
    mlflow_backend: Literal["sqlite", "postgres"] = Field(
        default="sqlite", description="`services up`: MLflow on SQLite + folder, or PostgreSQL + S3"
    )

    prefect_port: int = 4200
    mlflow_port: int = 5000
    weaviate_port: int = 8080

    mlflow_username: str | None = _credential(
        "mlflow_username",
        "MLFLOW_TRACKING_USERNAME",
        "MLflow basic-auth user; default: the local server's generated admin",
    )
    mlflow_password: str | None = _credential("mlflow_password", "MLFLOW_TRACKING_PASSWORD")
    prefect_auth_string: str | None = _credential(
        "prefect_auth_string",
        "PREFECT_API_AUTH_STRING",
        "user:password of the Prefect API; default: the local server's generated one",
    )
    model_signing_key: str | None = Field(
        default=None,
        description="HMAC key that signs registered hybrid models; default: one in the state",
    )

    torch_threads: int | None = Field(
        default=None,
        description="torch intra-op threads; default: the cores other work leaves free",
    )

    webhook_port: int = Field(default=5056, description="MLflow webhook receiver (serve)")
    webhook_secret: str | None = Field(
        default=None, description="HMAC secret of the MLflow webhook; default: one in the state"
    )

    query_log_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the query log; default: SQLite in the state folder",
    )

    @classmethod
    def for_profile(cls, profile: str | None = None) -> Settings:
        """Settings from the environment with the training profile (tiny | default | gpu) given
        as a parameter; None keeps DUALENGINE_PROFILE (default `default`)."""
        return cls(profile=profile) if profile else cls()

    @property
    def state(self) -> Path:
        """Folder for PID files, logs and the services' data."""
        return self.state_dir or (self.home / ".dualengine")

    @property
    def consistency(self) -> str:
        """The consistency level of Weaviate reads and writes: QUORUM unless set (on one node,
        with replication factor 1, every level is that node)."""
        return self.weaviate_consistency or "QUORUM"

    @property
    def query_log(self) -> str:
        """Where answered queries are logged (SQLite in the state folder unless set)."""
        return self.query_log_url or f"sqlite:///{self.state / 'query_log.db'}"

    def threads(self) -> int:
        """Torch threads for the path about to start (training, scoring, an engine): the
        setting; else the cores other work leaves free right now (`tasks.hardware.free_cores`).
        Measured on the 2-core reference machine (benchmarks/README.md, threads): idle, two
        threads answer 1.7x and score 2.1x faster than one; beside other busy processes two
        threads were several times slower, so a busy machine gets one."""
        if self.torch_threads:
            return self.torch_threads
        from tasks.hardware import free_cores

        return free_cores()

    @property
    def params_path(self) -> Path:
        return self.params_file or (self.home / "params.yaml")

    raft_dir: Path | None = Field(default=None, description="where built RAFT data is written")

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def raft_path(self) -> Path:
        """Built RAFT examples (DVC stage `raft`; default data/prepared/raft)."""
        return self.raft_dir or (self.data_dir / "prepared" / "raft")

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    def config(self) -> Config:
        """params.yaml as typed, validated sections (dualengine.config; cached until the file
        changes); a bad file raises ParamsError naming the key path and the reason."""
        from dualengine.config import load_config

        return load_config(self.params_path)

    def params(self) -> dict[str, Any]:
        """params.yaml as a dict, after it passed validation (`config()`)."""
        self.config()
        return load_params(self.params_path)

    training_overrides: dict[str, Any] = Field(default_factory=dict)

    def training_profile(self) -> Profile:
        """The active profile with the shared training keys and this run's overrides."""
        return self.config().training_profile(self.profile, **self.training_overrides)

    def training_params(self) -> dict[str, Any]:
        """The training block for the active profile, with the shared keys merged in."""
        return self.training_profile().as_dict()

    def context_length(self) -> int:
        """Tokens of prompt + answer when answering (the profile's `context_length`, else its
        training `max_length`): retrieved chunks are longer than training passages."""
        return self.training_profile().context_tokens

    def quantize(self) -> str:
        """How answering and scoring run on this CPU: params.yaml `inference.quantize` with
        `auto` resolved (`bf16` where the CPU has native bf16, else `none` = fp32; `int8` =
        dynamic int8 Linear layers). Cache keys of scores use this resolved value."""
        from tasks.hardware import resolve_quantize

        return resolve_quantize(self.config().inference.quantize)

    def with_training_override(self, **values: Any) -> Settings:
        """A copy whose training parameters are changed for one run (e.g. max_steps)."""
        return self.model_copy(update={"training_overrides": self.training_overrides | values})


@lru_cache(maxsize=8)
def _load_params_cached(path: str, mtime: float) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_params(path: Path) -> dict[str, Any]:
    """Read params.yaml (cached until the file changes)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (set DUALENGINE_PARAMS_FILE)")
    return _load_params_cached(str(path), path.stat().st_mtime)


def get_settings() -> Settings:
    """Fresh settings from the current environment."""
    return Settings()
