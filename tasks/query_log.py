"""The query log: every answered query, stored in SQLite (default) or Postgres for the monitors.

One row per query: text, query embedding (float32 bytes), retrieved passage ids and scores,
answer, latency split, conflict flag, caller groups, and the model and index that answered.
The URL is any SQLAlchemy URL (`sqlite:///path.db`, `postgresql+psycopg://user@host/db`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()
QUERIES = sa.Table(
    "queries",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary),
    sa.Column("retrieved_ids", sa.Text, nullable=False),
    sa.Column("retrieved_scores", sa.Text, nullable=False),
    sa.Column("top_similarity", sa.Float),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("answered", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("retrieval_ms", sa.Float),
    sa.Column("generation_ms", sa.Float),
    sa.Column("conflict", sa.Boolean),
    sa.Column("closed_book_answer", sa.Text),
    sa.Column("groups", sa.Text, nullable=False),
    sa.Column("model_version", sa.String(64)),
    sa.Column("index_collection", sa.String(200)),
    sa.Column("caller", sa.String(64)),
    sa.Column("trace_id", sa.String(64), index=True),  # the answer's MLflow trace
    sa.Column("feedback", sa.String(8)),  # "good" | "bad" (dualengine feedback)
    sa.Column("correction", sa.Text),
    sa.Column("feedback_ts", sa.DateTime(timezone=True)),
)
# Columns added after the first release: created on existing databases by `migrate`.
ADDED_COLUMNS = ("trace_id", "feedback", "correction", "feedback_ts")


@dataclass
class QueryRecord:
    question: str
    embedding: list[float] | None
    retrieved_ids: list[str]
    retrieved_scores: list[float]
    answer: str
    answered: bool
    latency_ms: float
    groups: list[str]
    retrieval_ms: float | None = None
    generation_ms: float | None = None
    top_similarity: float | None = None
    conflict: bool | None = None
    closed_book_answer: str | None = None
    model_version: str | None = None
    index_collection: str | None = None
    caller: str = "api"
    trace_id: str | None = None
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))


class QueryLog:
    """Append and read query records; the table is created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        self._lock = threading.Lock()
        METADATA.create_all(self._engine)
        migrate(self._engine)

    def record(self, entry: QueryRecord) -> None:
        import numpy as np

        row = {
            **entry.__dict__,
            "embedding": None
            if entry.embedding is None
            else np.asarray(entry.embedding, dtype="float32").tobytes(),
            "retrieved_ids": json.dumps(entry.retrieved_ids),
            "retrieved_scores": json.dumps(entry.retrieved_scores),
            "groups": json.dumps(sorted(entry.groups)),
        }
        with self._lock, self._engine.begin() as conn:
            conn.execute(QUERIES.insert().values(**row))

    def read(self, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Records (newest last), each with its embedding as a list of floats."""
        import numpy as np

        query = sa.select(QUERIES).order_by(QUERIES.c.id)
        if since is not None:
            query = query.where(QUERIES.c.ts >= since)
        if limit is not None:
            query = sa.select(QUERIES).order_by(QUERIES.c.id.desc()).limit(limit)
            if since is not None:
                query = query.where(QUERIES.c.ts >= since)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if limit is not None:
            rows.reverse()
        for row in rows:
            blob = row["embedding"]
            row["embedding"] = None if blob is None else np.frombuffer(blob, "float32").tolist()
            for key in ("retrieved_ids", "retrieved_scores", "groups"):
                row[key] = json.loads(row[key])
        return rows

    def rate(self, trace_id: str, feedback: str, correction: str | None) -> int:
        """Store a person's rating on the answer with this trace id; the rows changed."""
        update = (
            QUERIES.update()
            .where(QUERIES.c.trace_id == trace_id)
            .values(feedback=feedback, correction=correction, feedback_ts=datetime.now(UTC))
        )
        with self._lock, self._engine.begin() as conn:
            return int(conn.execute(update).rowcount or 0)

    def ratings(self, since: datetime | None = None) -> list[str]:
        """People's ratings ("good" / "bad") given since then, oldest first."""
        query = sa.select(QUERIES.c.feedback).where(QUERIES.c.feedback.is_not(None))
        if since is not None:
            query = query.where(QUERIES.c.feedback_ts >= since)
        with self._engine.connect() as conn:
            return [r[0] for r in conn.execute(query.order_by(QUERIES.c.feedback_ts))]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(QUERIES)).scalar_one())

    def close(self) -> None:
        self._engine.dispose()


def migrate(engine: sa.Engine) -> list[str]:
    """Add the nullable columns a log created by an older version lacks (existing rows get
    NULL); returns the names added. Only ever adds columns listed in ADDED_COLUMNS."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(QUERIES.name)}
    added = []
    with engine.begin() as conn:
        for name in ADDED_COLUMNS:
            if name in present:
                continue
            column = QUERIES.c[name]
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(sa.text(f'ALTER TABLE {QUERIES.name} ADD COLUMN "{name}" {kind}'))
            added.append(name)
        if "trace_id" in added:
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS ix_queries_trace_id ON {QUERIES.name} (trace_id)"
                )
            )
    return added


def _sqlite_pragmas(connection, _record) -> None:
    """WAL lets the monitor read while the server writes."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
