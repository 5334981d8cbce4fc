"""A private PostgreSQL cluster in the state folder for MLflow's store (`--mlflow-backend
postgres`): `initdb` with a generated password (scram-sha-256), loopback only, a free port.

PostgreSQL refuses to run as root; as root the cluster is owned by and run as the `postgres`
system user. Its data folder then sits beside the state folder (`<state>-postgres/`), since the
state folder itself stays private (0700); the folders above it get the search bit only.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dualengine.credentials import SECRETS_FOLDER, generated_secret, write_private
from dualengine.settings import Settings

USER = "dualengine"
PASSWORD_SECRET = "postgres-password"
DATABASES = ("mlflow",)


class PostgresError(RuntimeError):
    """PostgreSQL could not be found, initialised or started; the message says why."""


@dataclass(frozen=True)
class Cluster:
    data: Path
    password_file: Path
    run_as: str | None

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, port: int, database: str, driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://{USER}:{self.password}@127.0.0.1:{port}/{database}"


def bin_dir() -> Path:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    override = os.environ.get("DUALENGINE_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )[::-1]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise PostgresError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL 15 "
        "(apt-get install postgresql-15) or set DUALENGINE_PG_BIN"
    )


def cluster_root(settings: Settings) -> Path:
    """The cluster's folder: beside the state folder (the state folder stays 0700)."""
    return settings.state.parent / f"{settings.state.name}-postgres"


def _system_user() -> str | None:
    """Who runs the cluster: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresError("running as root needs a `postgres` system user") from exc
    return "postgres"


def _reachable_by(path: Path, user: str) -> None:
    """Give `user` the folder and search (not read) permission on the folders above it."""
    entry = pwd.getpwnam(user)
    for parent in list(path.parents)[::-1]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(command: list[str], run_as: str | None, **kwargs) -> subprocess.CompletedProcess:
    extra = {"user": run_as, "group": run_as, "extra_groups": []} if run_as else {}
    return subprocess.run(command, capture_output=True, text=True, check=False, **extra, **kwargs)


def ensure_cluster(settings: Settings) -> Cluster:
    """`initdb` once in <state>-postgres (idempotent); returns the cluster with its password
    (kept 0600 in the private state folder)."""
    root = cluster_root(settings)
    data = root / "data"
    password_file = settings.state / SECRETS_FOLDER / PASSWORD_SECRET
    run_as = _system_user()
    cluster = Cluster(data=data, password_file=password_file, run_as=run_as)
    if (data / "PG_VERSION").exists():
        return cluster
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    # a new cluster gets a new password (created 0600 with the other secrets)
    password_file.unlink(missing_ok=True)
    generated_secret(settings, PASSWORD_SECRET, lambda: secrets.token_urlsafe(24))
    data.mkdir(mode=0o700, exist_ok=True)
    pwfile = root / "initdb.pw"
    write_private(pwfile, cluster.password)
    if run_as:
        _reachable_by(root, run_as)
        _reachable_by(data, run_as)
        entry = pwd.getpwnam(run_as)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    try:
        result = _run(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            run_as,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise PostgresError(f"initdb failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return cluster


def server_command(cluster: Cluster, port: int) -> list[str]:
    """`postgres` in the foreground on 127.0.0.1:port only, no Unix socket."""
    return [
        str(bin_dir() / "postgres"),
        "-D",
        str(cluster.data),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        "unix_socket_directories=",
        "-c",
        "password_encryption=scram-sha-256",
        "-c",
        "max_connections=100",
    ]


def ensure_databases(cluster: Cluster, port: int, names: tuple[str, ...] = DATABASES) -> None:
    """Create the databases that are missing (the server is up)."""
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1", port=port, user=USER, password=cluster.password, dbname="postgres"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            for name in names:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}" OWNER {USER}')
    finally:
        conn.close()


def is_ready(cluster: Cluster, port: int) -> bool:
    """The server accepts a password login."""
    import psycopg2

    try:
        psycopg2.connect(
            host="127.0.0.1",
            port=port,
            user=USER,
            password=cluster.password,
            dbname="postgres",
            connect_timeout=2,
        ).close()
    except psycopg2.OperationalError:
        return False
    return True
