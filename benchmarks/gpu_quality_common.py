"""Shared by the gpu_quality modules: the repository root, the scored conditions, the run's log.

Every gpu_quality module imports this one and nothing imports them back, so the imports run one
way: gpu_quality (CLI + GPU run) → gpu_quality_prepare, gpu_quality_report → gpu_quality_common.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # dualengine and tasks, when a module runs as a script

CONDITIONS = ("closed_book", "retrieved", "oracle", "missing", "oracle_window")
WINDOW_WORDS = 50  # the old single-window oracle, kept only as a labelled comparison
STARTED = time.perf_counter()
_LOG: list[str] = []


def log(message: str) -> None:
    """Print a timestamped line and keep it for log.txt."""
    line = f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - STARTED:6.1f}s] {message}"
    _LOG.append(line)
    print(line, flush=True)


def log_text() -> str:
    """Every line logged so far: the content of log.txt."""
    return "\n".join(_LOG) + "\n"
