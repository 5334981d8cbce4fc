"""The `accelerate launch` entry point (any number of processes):
`accelerate launch [--config_file infra/accelerate/X.yaml] -m flows.train_worker SPEC.json`
runs `tasks.training.run_training` on the spec in every process (the finetune step calls it
in-process when one process and no config are asked for)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tasks.training import run_training

if __name__ == "__main__":
    run_training(json.loads(Path(sys.argv[1]).read_text()))
