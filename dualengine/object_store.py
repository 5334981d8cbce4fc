"""The S3-compatible artifact store of MLflow (`--mlflow-backend postgres`).

Locally: SeaweedFS (Apache-2.0; master + volume + filer + S3 gateway in one `weed server`),
built from its Go module into the cache like Weaviate, every port on 127.0.0.1, with an access
key generated per install. Anywhere: `python -m dualengine.object_store BUCKET` creates the
bucket (compose and Kubernetes init step); endpoint and credentials come from
MLFLOW_S3_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, as MLflow reads them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dualengine.credentials import generated_secret
from dualengine.settings import Settings

SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
BUCKET = "mlflow"
# master, master gRPC, volume, volume gRPC, filer, filer gRPC, S3, S3 gRPC
PORTS = 8


class ObjectStoreError(RuntimeError):
    """No S3 server binary could be had; the message says what was tried."""


def binary_path(settings: Settings) -> Path:
    return settings.cache_dir / f"seaweedfs-{SEAWEEDFS_VERSION.rsplit('-', 1)[-1]}" / "weed"


def ensure_binary(settings: Settings) -> Path:
    """The `weed` binary, built the first time from the pinned module (CGO off; minutes).

    Its go.mod has replace directives, so it is built inside the downloaded module rather than
    with `go install`."""
    target = binary_path(settings)
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise ObjectStoreError("Go is not installed (needed to build SeaweedFS)")
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{SEAWEEDFS_MODULE}@{SEAWEEDFS_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if download.returncode != 0:
        raise ObjectStoreError(f"go mod download {SEAWEEDFS_MODULE} failed: {download.stderr}")
    source = json.loads(download.stdout)["Dir"]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    build = subprocess.run(
        [go, "build", "-o", str(partial), "./weed"],
        cwd=source,
        env=dict(os.environ, CGO_ENABLED="0"),
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0 or not partial.exists():
        raise ObjectStoreError(f"go build of SeaweedFS failed: {build.stderr.strip()[-2000:]}")
    partial.rename(target)
    return target


def credentials(settings: Settings) -> dict[str, str]:
    """This install's S3 access key: generated once per state folder and kept with the other
    secrets (`<state>/secrets/`, files created 0600, see dualengine/credentials.py)."""
    key_id, _ = generated_secret(settings, "s3-access-key-id", lambda: "de" + secrets.token_hex(9))
    secret, _ = generated_secret(
        settings, "s3-secret-access-key", lambda: secrets.token_urlsafe(30)
    )
    return {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}


def server_environment(settings: Settings) -> dict[str, str]:
    """What `weed server` starts with: the S3 access key, and JWT keys and gRPC mTLS for its
    master, volume and filer (dualengine/seaweedfs_security.py)."""
    from dualengine import seaweedfs_security

    return credentials(settings) | seaweedfs_security.environment(settings)


def server_command(binary: Path, data: Path, base_port: int) -> list[str]:
    """`weed server` with the S3 gateway, every listener on 127.0.0.1 at base_port..+7
    (see PORTS)."""
    p = [str(base_port + i) for i in range(PORTS)]
    return [
        str(binary),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p[0]}",
        f"-master.port.grpc={p[1]}",
        "-master.volumeSizeLimitMB=1024",
        "-master.telemetry=false",
        f"-volume.port={p[2]}",
        f"-volume.port.grpc={p[3]}",
        "-volume.max=0",
        # one volume server, no peers to warn: stop at once instead of waiting 10 s
        "-volume.preStopSeconds=0",
        f"-filer.port={p[4]}",
        f"-filer.port.grpc={p[5]}",
        "-s3",
        f"-s3.port={p[6]}",
        f"-s3.port.grpc={p[7]}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def s3_port(base_port: int) -> int:
    return base_port + 6


def s3_client(endpoint: str | None = None, keys: dict[str, str] | None = None):
    """A boto3 S3 client for the configured endpoint (path-style, as self-hosted S3 needs);
    `keys` (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) instead of the environment's."""
    import boto3
    from botocore.config import Config

    given = (
        {
            "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
        }
        if keys
        else {}
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint or os.environ.get("MLFLOW_S3_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        **given,
    )


def ensure_bucket(bucket: str, endpoint: str | None = None, timeout: float = 60.0) -> bool:
    """Create the bucket unless it exists; True when it was created. Retries until the store
    answers (it may still be starting)."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = s3_client(endpoint)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return False
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"404", "NoSuchBucket", "NotFound"}:
                client.create_bucket(Bucket=bucket)
                return True
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise PermissionError(f"S3 bucket {bucket}: credentials refused ({code})") from exc
            if time.monotonic() > deadline:
                raise
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(1.0)


if __name__ == "__main__":  # pragma: no cover - exercised by the compose/Kubernetes init step
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dualengine.object_store BUCKET")
    created = ensure_bucket(sys.argv[1])
    print(f"bucket {sys.argv[1]}: {'created' if created else 'exists'}")
