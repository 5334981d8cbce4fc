"""Per-install secrets of the local services and the credentials every client uses.

`services up` starts Prefect, MLflow and Weaviate with authentication on. Their secrets are
generated once per state folder and kept in `<state>/secrets/` (folder 0700, files 0600, each
file created with its final mode — never written first and tightened afterwards). A client
takes a configured credential first (DUALENGINE_* / MLFLOW_TRACKING_* / PREFECT_API_AUTH_STRING)
and falls back to the generated one only for a service this state folder manages.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dualengine.settings import Settings

SECRETS_FOLDER = "secrets"
MLFLOW_ADMIN = "admin"
PREFECT_USER = "dualengine"
WEAVIATE_USER = "dualengine"


class SecretFileError(RuntimeError):
    """A secret file or folder is not what it must be (a regular file only its owner reads)."""


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (created 0700; an existing one tightened)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise SecretFileError(f"{path}: expected a folder, found something else")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _read_secret(path: Path) -> str:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{path}: a secret must be a regular file (not a link)")
    if info.st_mode & 0o077:
        raise SecretFileError(
            f"{path}: readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            "run `chmod 600` on it or delete it to generate a new one"
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SecretFileError(f"{path}: empty secret; delete it to generate a new one")
    return value


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a 0600 file holding `text` (created with that mode)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def generated_secret(
    settings: Settings, name: str, factory: Callable[[], str] | None = None
) -> tuple[str, bool]:
    """The secret `name` of this state folder, generating it the first time.

    Returns (value, created). Two processes racing get the same value: the new file is linked
    into place only if no other process got there first."""
    folder = private_dir(private_dir(settings.state) / SECRETS_FOLDER)
    path = folder / name
    if path.exists() or path.is_symlink():
        return _read_secret(path), False
    value = (factory or (lambda: secrets.token_urlsafe(32)))()
    tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path), created


def fernet_key() -> str:
    """A new Fernet key (MLflow encrypts webhook secrets with it)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class LocalSecrets:
    """What `services up` configures its servers with: the configured credential where one is
    set (so the servers and their clients always agree), else the generated one."""

    weaviate_api_key: str
    mlflow_admin_username: str
    mlflow_admin_password: str
    prefect_auth_string: str
    webhook_encryption_key: str
    mlflow_flask_secret_key: str


def local_secrets(settings: Settings) -> LocalSecrets:
    """The secrets of this state folder's servers (generated on first use)."""
    user, password = settings.mlflow_username, settings.mlflow_password
    if not (user and password):
        user, password = MLFLOW_ADMIN, generated_secret(settings, "mlflow-admin-password")[0]
    prefect = settings.prefect_auth_string
    if not prefect:
        prefect = f"{PREFECT_USER}:{generated_secret(settings, 'prefect-auth-password')[0]}"
    webhook_key = (
        os.environ.get("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY")
        or (generated_secret(settings, "mlflow-webhook-encryption-key", fernet_key)[0])
    )
    return LocalSecrets(
        weaviate_api_key=settings.weaviate_api_key
        or generated_secret(settings, "weaviate-api-key")[0],
        mlflow_admin_username=user,
        mlflow_admin_password=password,
        prefect_auth_string=prefect,
        webhook_encryption_key=webhook_key,
        mlflow_flask_secret_key=generated_secret(settings, "mlflow-flask-secret-key")[0],
    )


@dataclass(frozen=True)
class ClientCredentials:
    """What clients send; None where a service needs nothing (an external one, unconfigured)."""

    weaviate_api_key: str | None
    mlflow_username: str | None
    mlflow_password: str | None
    prefect_auth_string: str | None

    def environment(self) -> dict[str, str]:
        """The variables that carry these credentials to mlflow, prefect and child processes."""
        env = {
            "DUALENGINE_WEAVIATE_API_KEY": self.weaviate_api_key,
            "MLFLOW_TRACKING_USERNAME": self.mlflow_username,
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_password,
            "PREFECT_API_AUTH_STRING": self.prefect_auth_string,
        }
        return {k: v for k, v in env.items() if v}


def existing_secret(settings: Settings, name: str) -> str | None:
    """A generated secret if this state folder has one; clients never create secrets."""
    path = settings.state / SECRETS_FOLDER / name
    if not (path.exists() or path.is_symlink()):
        return None
    return _read_secret(path)


def client_credentials(settings: Settings, external: list[str]) -> ClientCredentials:
    """Configured credentials first; the generated ones for the services this folder manages."""
    weaviate_key = settings.weaviate_api_key
    if not weaviate_key and "weaviate" not in external:
        weaviate_key = existing_secret(settings, "weaviate-api-key")
    user, password = settings.mlflow_username, settings.mlflow_password
    if not (user and password) and "mlflow" not in external:
        password = existing_secret(settings, "mlflow-admin-password")
        user = MLFLOW_ADMIN if password else None
    prefect = settings.prefect_auth_string
    if not prefect and "prefect" not in external:
        prefect_password = existing_secret(settings, "prefect-auth-password")
        prefect = f"{PREFECT_USER}:{prefect_password}" if prefect_password else None
    return ClientCredentials(weaviate_key, user, password, prefect)
