"""Database fixtures: `db_url` runs a test on SQLite and on PostgreSQL.

PostgreSQL comes from NEWSLETTER_TEST_POSTGRES_URL (a server where that role may CREATE
DATABASE), or else from a private throwaway cluster started once per session when the server
binaries are installed (/usr/lib/postgresql/*/bin). Without either, PostgreSQL tests skip,
or fail when CI is set. Every test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

__all__ = ["db_url", "fresh_postgres_database", "postgres_server", "postgres_url"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses root: run server commands as the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An admin URL (database `postgres`) of a PostgreSQL server for this test session."""
    given = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required when CI is set (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed")
    bindir = Path(bins[-1]).parent
    work = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    data = work / "data"
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    run = {"check": True, "capture_output": True, "text": True}
    port = _free_port()
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                     "-A", "trust", "-E", "UTF8", "--locale=C", "-N"]), **run)
        options = (f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l",
                                     str(work / "log"), "-o", options, "-w", "start"]), **run)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                     "stop"]), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@contextmanager
def fresh_postgres_database(postgres_server: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    admin = make_url(postgres_server)
    if admin.drivername in ("postgresql", "postgres"):
        admin = admin.set(drivername="postgresql+psycopg")
    name = f"nl_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database: once on SQLite (a file), once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / '.newsletter' / 'newsletter.db'}"
    return request.getfixturevalue("postgres_url")
