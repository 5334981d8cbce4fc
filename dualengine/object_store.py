"""The S3-compatible artifact store of MLflow: a bucket that must exist before MLflow writes.

`python -m dualengine.object_store BUCKET` creates it (compose and Kubernetes init step); the
endpoint and credentials come from MLFLOW_S3_ENDPOINT_URL / AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, as MLflow itself reads them.
"""

from __future__ import annotations

import os
import sys
import time


def s3_client(endpoint: str | None = None):
    """A boto3 S3 client for the configured endpoint (path-style, as self-hosted S3 needs)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or os.environ.get("MLFLOW_S3_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
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
