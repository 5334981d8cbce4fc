"""Every command answers --help."""

import pytest
from typer.testing import CliRunner

from flows.cli import app

COMMANDS = [
    [],
    ["setup"],
    ["run"],
    ["ask"],
    ["status"],
    ["services"],
    ["services", "up"],
    ["services", "down"],
    ["services", "status"],
    ["ingest"],
    ["reindex"],
    ["evaluate-retrieval"],
    ["rollback"],
    ["finetune"],
    ["promote"],
    ["build-raft"],
    ["prepare-data"],
    ["evaluate"],
    ["register-hybrid"],
    ["serve-model"],
    ["monitor"],
    ["serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
