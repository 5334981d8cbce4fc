"""Helpers of the e2e tests: the CLI in a subprocess, flow runs and artifacts from Prefect."""

import subprocess
import sys


def cli(*args, check=True):
    out = subprocess.run(
        [sys.executable, "-m", "flows", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"dualengine {' '.join(args)} exited {out.returncode}:\n{out.stderr[-4000:]}"
        )
    return out


def flow_runs_and_artifacts(flow_name, keys=None):
    """Flow runs of a flow and artifacts (optionally only these keys), from the Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name]))
            )
            artifact_filter = ArtifactFilter(key=ArtifactFilterKey(any_=keys)) if keys else None
            artifacts = await client.read_artifacts(
                artifact_filter=artifact_filter, sort=ArtifactSort.CREATED_DESC
            )
            return runs, artifacts

    return asyncio.run(read())
