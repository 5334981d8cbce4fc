"""`python -m flows` = the `dualengine` command."""

from flows.cli import app

app()
