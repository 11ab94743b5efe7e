"""PostgreSQL applies a large import's chunks on two connections at once: a chunk stuck behind
a row lock does not hold the others up, new people's ids still follow the file, the result is
the one a single connection gives, and a failure or Ctrl-C ends with the chunks in flight done
and no staging table or connection left behind. (Small files, made to take this path by
lowering `PG_PARALLEL_FROM`; the other import tests pin the one-connection path.)"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from newsletter.audience import add_subscriber, import_csv, importer, staging
from newsletter.audience import merge as merge_module
from newsletter.audience.erasure import erase
from newsletter.db.tables import subscribers
from tests.audience.test_import_chunks import FILE, existing, people, trail, wipe

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

FIRST = [f"p{i}@example.org" for i in range(10)]  # chunk 1 with chunk_rows=10 (lines 2-11)
LATER = [f"p{i}@example.org" for i in range(10, 40)]  # chunks 2-4


@pytest.fixture(autouse=True)
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "PG_PARALLEL_FROM", 0)


def _until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    """Wait for `condition` (checked every 10 ms); False when `timeout` s pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _present(engine: Engine, emails: list[str]) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(subscribers.c.id)
                                .where(subscribers.c.email.in_(emails))).all())


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one())


def _in_id_order(engine: Engine, leave_out: set[str]) -> list[str]:
    with engine.connect() as conn:
        emails = conn.execute(select(subscribers.c.email).order_by(subscribers.c.id)).scalars()
        return [e for e in emails if e not in leave_out]


def _file_order(leave_out: set[str]) -> list[str]:
    return [e for e in (f"p{i}@example.org" for i in range(40)) if e not in leave_out]


def _nothing_left_behind(engine: Engine) -> None:
    """No staging table in any session, every connection back in the pool and idle."""
    assert engine.pool.checkedout() == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_class "
                                 "WHERE relname LIKE 'newsletter\\_import%'")).scalar_one() == 0
        others = conn.execute(text(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars().all()
        assert set(others) <= {"idle"}
        assert len(others) == engine.pool.checkedin()  # every other session is a pooled one


@pytest.fixture()
def p3_locked(engine: Engine) -> Iterator[Callable[[], None]]:
    """p3 (whom chunk 1 renames) row-locked by another transaction until the release called."""
    existing(engine)
    holder = engine.connect()
    holder.begin()
    holder.execute(select(subscribers.c.id).where(subscribers.c.email == "p3@example.org")
                   .with_for_update())

    def release() -> None:
        holder.close()  # rolled back, back in the pool

    yield release
    release()


def test_a_later_chunk_commits_while_the_first_waits_for_a_lock(
    engine: Engine, write_csv, p3_locked: Callable[[], None]
) -> None:
    """Fails with PG_APPLY_WORKERS = 1: chunk 1 waits, and so would every chunk after it."""
    path = write_csv(FILE)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = import_csv(engine, path, chunk_rows=10)
        except BaseException as exc:  # noqa: BLE001  (shown by the asserts below)
            outcome["error"] = exc

    importing = threading.Thread(target=run)
    importing.start()
    try:
        assert _until(lambda: _present(engine, LATER) == len(LATER)), \
            "chunks 2-4 were not committed while chunk 1 waited for its lock"
        assert _waiting_on_a_lock(engine)
        assert _present(engine, FIRST) == 1  # only p3, there before: chunk 1 is not in
    finally:
        p3_locked()
        importing.join(60)
    report = outcome.get("report")
    assert report is not None, outcome.get("error")
    assert (report.added, report.updated, report.unchanged, report.chunks) == (37, 3, 0, 4)
    assert people(engine)["p3@example.org"][0] == "P3"
    known = {"p3@example.org", "p17@example.org", "p26@example.org"}
    assert _in_id_order(engine, known) == _file_order(known)  # although chunk 1 came last
    _nothing_left_behind(engine)


def test_the_result_is_the_one_a_single_connection_gives(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing(engine)
    path = write_csv(FILE)
    report = import_csv(engine, path, chunk_rows=7)
    assert (report.added, report.updated, report.unchanged, report.chunks) == (37, 3, 0, 6)
    result, result_trail = people(engine), trail(engine)
    known = {"p3@example.org", "p17@example.org", "p26@example.org"}
    assert _in_id_order(engine, known) == _file_order(known)
    _nothing_left_behind(engine)

    wipe(engine)
    existing(engine)
    monkeypatch.setattr(importer, "PG_PARALLEL_FROM", 10**9)  # the import's connection alone
    alone = import_csv(engine, path, chunk_rows=7)
    assert (alone.added, alone.updated, alone.unchanged) == (37, 3, 0)
    assert people(engine) == result and trail(engine) == result_trail


def test_someone_added_or_erased_after_the_hand_out(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """p15 signs up after chunk 2 was handed out with an id for them: merged, not added
    (that id is left unused); p33 is erased after chunk 4 was handed out: rejected."""
    secret = "s" * 40
    with engine.begin() as conn:
        add_subscriber(conn, "p33@example.org")
    copy_span = staging.copy_span

    def then_someone(source, target, lines):  # noqa: ANN001, ANN202
        copy_span(source, target, lines)
        with engine.begin() as other:
            if lines[0] <= 17 <= lines[1]:  # p15's line
                add_subscriber(other, "p15@example.org", name="Someone", tags=["z"])
            if lines[0] <= 35 <= lines[1]:  # p33's
                erase(other, secret, "p33@example.org")

    monkeypatch.setattr(staging, "copy_span", then_someone)
    report = import_csv(engine, write_csv(FILE), secret=secret, chunk_rows=10)
    assert (report.added, report.updated, report.rejected) == (38, 1, 1)
    assert report.problems[0].line == 35 and "erased" in report.problems[0].message
    found = people(engine)
    assert "p33@example.org" not in found
    assert found["p15@example.org"][:3] == ("P15", "active", ("c", "z"))
    leave_out = {"p15@example.org", "p33@example.org"}
    assert _in_id_order(engine, leave_out) == _file_order(leave_out)
    _nothing_left_behind(engine)


def test_an_address_added_mid_chunk_is_merged_on_a_workers_second_try(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on one connection (test_import_chunks): the chunk's insert fails on the unique key,
    the chunk is rolled back and applied again on its connection, counted once."""
    insert_new = merge_module._insert_new_at_once
    tries: list[tuple[int, int]] = []

    def someone_first(conn, lines, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        tries.append(lines)
        if lines[0] <= 7 <= lines[1] and tries.count(lines) == 1:  # p5's chunk, first try
            with engine.begin() as other:
                add_subscriber(other, "p5@example.org", name="Someone Else", tags=["z"])
        return insert_new(conn, lines, *args, **kw)

    monkeypatch.setattr(merge_module, "_insert_new_at_once", someone_first)
    report = import_csv(engine, write_csv(FILE), chunk_rows=10)
    assert sorted(tries) == [(2, 11), (2, 11), (12, 21), (22, 31), (32, 41)]
    assert (report.added, report.updated, report.unchanged, report.rejected) == (39, 1, 0, 0)
    assert people(engine)["p5@example.org"][:3] == ("P5", "active", ("a", "b", "z"))
    _nothing_left_behind(engine)


def test_a_chunk_that_fails_for_good_is_raised_and_nothing_leaks(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunk 2 fails on every try: raised from import_csv once chunk 1 (handed out before it,
    so done or in flight) has committed; chunk 2 left nothing."""
    applied = merge_module.apply_chunk
    tries = []

    def failing_second(conn, lines, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if lines == (12, 21):
            tries.append(lines)
            raise IntegrityError("INSERT INTO subscribers", {}, Exception("duplicate key"))
        return applied(conn, lines, *args, **kw)

    monkeypatch.setattr(merge_module, "apply_chunk", failing_second)
    with pytest.raises(IntegrityError):
        import_csv(engine, write_csv(FILE), chunk_rows=10)
    assert len(tries) == importer.CHUNK_TRIES
    assert _present(engine, FIRST) == 10
    assert _present(engine, [f"p{i}@example.org" for i in range(10, 20)]) == 0
    _nothing_left_behind(engine)


def test_ctrl_c_waits_for_the_chunk_in_flight_then_raises(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch,
    p3_locked: Callable[[], None]
) -> None:
    """Ctrl-C while chunk 1 waits for a lock: no chunk is handed out after it, chunk 1 ends
    (commits) once the lock is let go, then KeyboardInterrupt is raised; nothing left behind."""
    stop = importer._HandOut.stop
    stopped = threading.Event()

    def noted(self, exc):  # noqa: ANN001, ANN202
        stop(self, exc)
        stopped.set()

    monkeypatch.setattr(importer._HandOut, "stop", noted)
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt() -> None:
        try:
            if _until(lambda: _waiting_on_a_lock(engine)):
                signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C
                stopped.wait(30)
        finally:
            p3_locked()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    ctrl_c = threading.Thread(target=interrupt)
    try:
        ctrl_c.start()
        with pytest.raises(KeyboardInterrupt):
            import_csv(engine, write_csv(FILE), chunk_rows=10)
    finally:
        ctrl_c.join(60)
        signal.signal(signal.SIGINT, previous)
    assert stopped.is_set()
    assert _present(engine, FIRST) == 10  # the chunk in flight ended, committed
    assert people(engine)["p3@example.org"][0] == "P3"
    _nothing_left_behind(engine)


def test_new_ids_come_from_the_sequence_the_importer_names(engine: Engine) -> None:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT pg_get_serial_sequence('subscribers', 'id')"))
        assert found.scalar_one() == f"public.{staging.SUBSCRIBER_IDS}"
