"""The e2e tests share one `dualengine run` on the session's servers (tiny profile)."""

import json

import pytest
from e2e_helpers import cli


@pytest.fixture(scope="session")
def first_run(stack):
    return json.loads(cli("run", "--profile", "tiny", "--json").stdout)
