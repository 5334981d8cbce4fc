"""Options that several commands share (same flag, same help everywhere)."""

from __future__ import annotations

from typing import Annotated

import typer

ProfileOption = Annotated[
    str | None, typer.Option("--profile", "-p", help="tiny | default | gpu (DUALENGINE_PROFILE)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        help="Seconds to wait for a run already in progress before refusing (exit 6); "
        "default params.yaml index.lock_wait_seconds.",
    ),
]
TrainOption = Annotated[str | None, typer.Option(help="Training QA JSONL.")]
