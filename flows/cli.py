"""`dualengine`: the command line (the `dualengine` script and `python -m flows`). The commands
live in flows/commands/ by kind of work, their shared options in flows/commands/options.py, how
they print in flows/render.py; heavy libraries are imported inside each command."""

from __future__ import annotations

import typer

from flows.commands import answering, jobs, knowledge, operations
from flows.commands import services as services_commands

app = typer.Typer(
    help="Hybrid enterprise AI: a LoRA behaviour engine + a Weaviate knowledge engine.",
    no_args_is_help=True,
    add_completion=False,
)
services_app = typer.Typer(
    help="Start, check and stop the local Prefect, MLflow and Weaviate.", no_args_is_help=True
)
app.add_typer(services_app, name="services")

for name, command in (
    ("up", services_commands.up),
    ("down", services_commands.down),
    ("status", services_commands.status),
):
    services_app.command(name)(command)

# in this order in `dualengine --help`
for name, command in (
    ("setup", jobs.setup),
    ("prepare-data", jobs.prepare_data),
    ("run", jobs.run),
    ("finetune", jobs.finetune),
    ("build-raft", jobs.build_raft),
    ("promote", jobs.promote),
    ("ingest", knowledge.ingest),
    ("reindex", knowledge.reindex),
    ("evaluate-retrieval", knowledge.evaluate_retrieval),
    ("rollback", knowledge.rollback),
    ("ask", answering.ask),
    ("feedback", answering.feedback),
    ("evaluate", jobs.evaluate),
    ("register-hybrid", jobs.register_hybrid),
    ("serve-model", answering.serve_model),
    ("ui", answering.ui),
    ("monitor", operations.monitor),
    ("serve", operations.serve),
    ("deploy", operations.deploy),
    ("status", operations.status),
):
    app.command(name)(command)
