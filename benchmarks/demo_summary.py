"""The demo timing's summary: phases (from demo_time.sh) plus each task of the latest flow run
as Prefect recorded it, written as JSON.

    .venv/bin/python benchmarks/demo_summary.py PHASES_TSV OUT_JSON TOTAL_SECONDS COLD(0|1)

Run with the demo's services up and its DUALENGINE_* environment (demo_time.sh does).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def flow_tasks() -> dict:
    """The latest flow run's name and its task runs, longest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
        if not runs:
            return {"flow_run": None, "tasks": []}
        found = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id]))
        )
        tasks = sorted(
            (
                {"task": t.name, "seconds": round(t.total_run_time.total_seconds(), 1)}
                for t in found
            ),
            key=lambda t: -t["seconds"],
        )
        return {"flow_run": runs[0].name, "tasks": tasks}


def main() -> None:
    from dualengine.endpoints import export_endpoints
    from dualengine.settings import get_settings

    export_endpoints(get_settings())  # before prefect is imported: the demo's authenticated API
    phases_tsv, out, total, cold = sys.argv[1:5]
    phases = [
        dict(zip(("phase", "seconds", "load_start", "load_end"), line.split("\t"), strict=True))
        for line in Path(phases_tsv).read_text().splitlines()
    ]
    result = {
        "cold_caches": cold == "1",
        "cores": os.cpu_count(),
        "total_seconds": round(float(total), 1),
        "phases": phases,
        **asyncio.run(flow_tasks()),
    }
    Path(out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
