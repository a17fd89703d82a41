"""Real throwaway database servers for the tests, started in a temp dir on a free loopback port.

Without the server binaries a test that needs one skips, except in CI (CI=true), where `.ci/run`
installs them and a skip would hide that nothing was proven: there it fails instead. The PostgreSQL
cluster serves the source tests (`test_server_sources.py`) and the PostgreSQL state store and Dagster
instance tests alike: each asks `PostgresCluster.create_database` for a database of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PASSWORD = "s3cret-Pa55"
USER = "clinic"
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}: CI must run the server tests (.ci/run installs the server packages)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_server_user(user: str, command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the service user when we are root."""
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", user, "--", *command] if os.geteuid() == 0 else command


def scratch_dir(prefix: str, owner: str | None) -> Path:
    # Not pytest's tmp_path: its parents are private to root, and the server user must reach the folder.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)
    return path


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(versions[-1]) if versions else None


@dataclass(frozen=True)
class PostgresCluster:
    """A running server with one password-protected superuser, `USER`."""

    port: int
    host: str = "127.0.0.1"

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@{self.host}:{self.port}/{database}"

    def connect(self, database: str, *, autocommit: bool = False) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, dbname=database, autocommit=autocommit
        )

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (a unique name unless given); its name."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name


@contextmanager
def running_postgres() -> Iterator[PostgresCluster]:
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    assert initdb and pg_ctl
    owner = "postgres" if os.geteuid() == 0 else None
    root = scratch_dir("clinic-pg-", owner)
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD)
    if owner:
        shutil.chown(pwfile, owner, owner)
    port = free_port()
    subprocess.run(
        as_server_user(
            "postgres",
            [initdb, "-D", str(data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
             "--no-sync", "--locale=C"],
        ),
        check=True,
        capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        as_server_user("postgres", [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresCluster(port)
    finally:
        subprocess.run(
            as_server_user("postgres", [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
