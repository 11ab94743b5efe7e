"""Database fixtures: `db_url` runs a test on SQLite and on PostgreSQL.

PostgreSQL comes from NEWSLETTER_TEST_POSTGRES_URL (a server where that role may CREATE
DATABASE), or else from a private throwaway cluster started once per session when the server
binaries are installed (/usr/lib/postgresql/*/bin). Without either, PostgreSQL tests skip,
or fail when CI is set. Every test gets a database of its own.

Migrating a database takes about a second on PostgreSQL, so a test that wants one at the latest
schema asks for `migrated_db_url`: each test session (each xdist worker) migrates one template
database (PostgreSQL) or file (SQLite) and every such test gets a copy of it
(`CREATE DATABASE ... TEMPLATE`, a file copy). Databases are dropped in a background thread,
off the tests' path; the session waits for the drops at its end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

__all__ = ["db_url", "fresh_postgres_database", "migrated_db_url", "postgres_admin",
           "postgres_server", "postgres_template", "postgres_url", "sqlite_template"]


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


def _admin_url(postgres_server: str):
    admin = make_url(postgres_server)
    if admin.drivername in ("postgresql", "postgres"):
        admin = admin.set(drivername="postgresql+psycopg")
    return admin


def _drop(engine: Engine, name: str) -> None:
    """DROP DATABASE, retried: FORCE cannot end an autovacuum worker busy in the database
    (PostgreSQL refuses with InsufficientPrivilege), which finishes within moments."""
    for attempt in range(20):
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == 19:
                raise
            time.sleep(0.25)


class _Dropper:
    """Drops test databases in a background thread; `close()` waits and reports failures."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="drop-test-db")
        self.pending: list[Future] = []

    def drop(self, engine: Engine, name: str) -> None:
        self.pending.append(self.pool.submit(_drop, engine, name))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for future in self.pending:
            future.result()  # raises the first failure (a database left on the server)


@pytest.fixture(scope="session")
def postgres_admin(postgres_server: str) -> Iterator[tuple[Engine, _Dropper]]:
    """An AUTOCOMMIT engine on the server's admin database, and the session's dropper."""
    engine = create_engine(_admin_url(postgres_server), isolation_level="AUTOCOMMIT")
    dropper = _Dropper()
    try:
        yield engine, dropper
    finally:
        try:
            dropper.close()
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str,
                      postgres_admin: tuple[Engine, _Dropper]) -> Iterator[str]:
    """A PostgreSQL database migrated to the latest schema once per session (per worker)."""
    from newsletter.db import open_database

    engine, _ = postgres_admin
    name = f"nl_tpl_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        open_database(_admin_url(postgres_server).set(database=name)
                      .render_as_string(hide_password=False)).dispose()
        yield name
    finally:
        _drop(engine, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the latest schema once per session (per worker)."""
    from newsletter.db import open_database

    path = tmp_path_factory.mktemp("sqlite-template") / "newsletter.db"
    open_database(f"sqlite:///{path}").dispose()  # the last connection folds the WAL in
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@contextmanager
def fresh_postgres_database(postgres_server: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    admin = _admin_url(postgres_server)
    name = f"nl_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(engine, name)
        engine.dispose()


def _postgres_copy(request: pytest.FixtureRequest, template: str | None) -> str:
    """A database of its own for this test (empty, or a copy of `template`), dropped after."""
    engine, dropper = request.getfixturevalue("postgres_admin")
    admin = _admin_url(request.getfixturevalue("postgres_server"))
    name = f"nl_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"'
                                                           if template else "")))
        # A throwaway database need not wait for each COMMIT to reach the disk (the private
        # cluster above runs with synchronous_commit=off for the same reason). Visibility,
        # locking and isolation are unchanged; only a crash of the server could lose commits.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    request.addfinalizer(lambda: dropper.drop(engine, name))
    return admin.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to a database of this test's own: once on SQLite (a file), once on PostgreSQL.

    Empty, unless the test (or one of its fixtures) also asks for `migrated_db_url`: then it
    is that same database, already at the latest schema."""
    migrated = "migrated_db_url" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / ".newsletter" / "newsletter.db"
        if migrated:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    template = request.getfixturevalue("postgres_template") if migrated else None
    return _postgres_copy(request, template)


@pytest.fixture()
def migrated_db_url(db_url: str) -> str:
    """`db_url`, already upgraded to the latest schema (a copy of the session's template)."""
    return db_url
