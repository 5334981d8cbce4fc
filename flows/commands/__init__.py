"""The `dualengine` commands, one module per kind of work; flows/cli.py assembles them."""
