"""Prefect tasks of each job, one module per flow: thin wrappers over tasks/ that add tracking
and a readable artifact each."""
