"""Only hybrid model versions this project registered are served.

Loading a pyfunc unpickles and runs its code, so anyone who could register a version and move
`champion` could run code in `serve-model`. At registration the project hashes every file of
the packed model as stored in MLflow and records an HMAC of that digest (key: per install,
`<state>/secrets/model-signing-key`, or DUALENGINE_MODEL_SIGNING_KEY) as the version's
`dualengine_signature` tag. `verified_model_dir` downloads a version, recomputes the digest and
checks the tag before anything is loaded; the server then loads exactly the verified copy.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import stat
import tempfile
from pathlib import Path

from dualengine.credentials import existing_secret, generated_secret
from dualengine.settings import Settings

SIGNATURE_TAG = "dualengine_signature"
SCHEME = "hmac-sha256-v1"
# written by the MLflow client itself into a downloaded `models:/` folder (name and version)
CLIENT_WRITTEN = frozenset({"registered_model_meta"})
KEY_NAME = "model-signing-key"


class ModelSignatureError(RuntimeError):
    """A model version without a valid signature of this install; never loaded."""


def artifact_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and content (sorted); links are refused."""
    outer = hashlib.sha256()
    entries = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ModelSignatureError(f"{path}: a packed model may not contain links")
            if stat.S_ISREG(mode):
                relative = path.relative_to(folder).as_posix()
                if relative not in CLIENT_WRITTEN:
                    entries.append(relative)
    for relative in sorted(entries):
        inner = hashlib.sha256()
        with open(folder / relative, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        outer.update(f"{relative}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def _key(settings: Settings, create: bool) -> bytes | None:
    if settings.model_signing_key:
        return settings.model_signing_key.encode()
    value = (
        generated_secret(settings, KEY_NAME)[0] if create else existing_secret(settings, KEY_NAME)
    )
    return value.encode() if value else None


def signature(key: bytes, model_name: str, digest: str) -> str:
    mac = hmac.new(key, f"{SCHEME}\n{model_name}\n{digest}".encode(), hashlib.sha256)
    return f"{SCHEME}:{mac.hexdigest()}"


def sign_folder(settings: Settings, model_name: str, folder: Path) -> str:
    """The signature tag value for a packed model folder (creates the key the first time)."""
    key = _key(settings, create=True)
    assert key is not None
    return signature(key, model_name, artifact_digest(folder))


def verify_folder(settings: Settings, model_name: str, version: str, folder: Path, tag: str | None):
    """Raise ModelSignatureError unless `tag` is this install's signature of `folder`."""
    what = f"{model_name} v{version}"
    if not tag:
        raise ModelSignatureError(
            f"{what} has no {SIGNATURE_TAG} tag: it was not registered by dualengine "
            "(`dualengine register-hybrid` signs what it registers); refusing to load it"
        )
    key = _key(settings, create=False)
    if key is None:
        raise ModelSignatureError(
            f"{what}: no model-signing key in {settings.state / 'secrets'} and "
            "DUALENGINE_MODEL_SIGNING_KEY is unset; cannot check its signature, refusing to load it"
        )
    if not hmac.compare_digest(tag, signature(key, model_name, artifact_digest(folder))):
        raise ModelSignatureError(
            f"{what}: its files do not match the signature recorded at registration (changed "
            "after registration, or registered by someone else); refusing to load it"
        )


def download_signed(settings: Settings, model_uri: str, model_name: str) -> str:
    """Sign a logged model as it is stored: download it and return its signature tag value."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="dualengine-sign-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        return sign_folder(settings, model_name, local)


def verified_model_dir(settings: Settings, model_name: str, ref: str) -> tuple[str, Path]:
    """Download version or alias `ref` of `model_name`, check its signature, and return
    (version, folder) — the folder to serve; a version that fails raises ModelSignatureError."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    found = (
        client.get_model_version(model_name, ref)
        if ref.isdigit()
        else client.get_model_version_by_alias(model_name, ref)
    )
    version = str(found.version)
    root = settings.state / "served"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{model_name}-v{version}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_name}-v{version}-", dir=root))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}", dst_path=tmp)
        )
        verify_folder(settings, model_name, version, local, (found.tags or {}).get(SIGNATURE_TAG))
        shutil.rmtree(target, ignore_errors=True)
        local.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return version, target
