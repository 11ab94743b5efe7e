"""The import checks the whole file, then applies it in short write transactions: re-importing
writes nothing for unchanged rows, an interruption while applying keeps whole chunks and the
same import run again completes the job, and on SQLite another writer gets in between chunks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select

from newsletter.audience import Status, add_subscriber, import_csv, set_status
from newsletter.audience import merge as merge_module
from newsletter.audience.history import Source
from newsletter.core.errors import InputError
from newsletter.db import open_database
from newsletter.db.tables import subscriber_history, subscriber_tags, subscribers


def people(engine: Engine) -> dict[str, tuple]:
    """Every subscriber as the import leaves them: name, status, tags, attributes."""
    with engine.connect() as conn:
        tags: dict[int, list[str]] = {}
        st = subscriber_tags.c
        for sid, tag in conn.execute(select(st.subscriber_id, st.tag)):
            tags.setdefault(sid, []).append(tag)
        return {row.email: (row.name, row.status, tuple(sorted(tags.get(row.id, []))),
                            row.attributes)
                for row in conn.execute(select(subscribers))}


def trail(engine: Engine) -> Counter:
    """The audit trail without times: (address, source, field, before, after) counted."""
    h, s = subscriber_history.c, subscribers.c
    with engine.connect() as conn:
        return Counter(conn.execute(select(s.email, h.source, h.field, h.before, h.after)
                                    .join(subscribers, s.id == h.subscriber_id)).all())


def raw(engine: Engine) -> list[tuple]:
    """Every stored value, timestamps included: proof that nothing was written."""
    with engine.connect() as conn:
        return [tuple(r) for table in (subscribers, subscriber_tags, subscriber_history)
                for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def existing(engine: Engine) -> None:
    """People the file meets: one to rename and tag, one it retires, one it must not revive."""
    with engine.begin() as conn:
        add_subscriber(conn, "p3@example.org", name="Old Name", tags=["keep"],
                       attributes={"role": "press"})
        add_subscriber(conn, "p17@example.org", name="P17")
        add_subscriber(conn, "p26@example.org", name="P26")
        set_status(conn, "p26@example.org", Status.UNSUBSCRIBED)


def wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (subscriber_history, subscriber_tags, subscribers):
            conn.execute(delete(table))


FILE = "email,name,tags,status,role\n" + "".join(
    f"p{i}@example.org,P{i},{'a;b' if i % 3 else 'c'},"
    f"{'bounced' if i == 17 else 'active' if i == 26 else ''},{'staff' if i % 5 == 0 else ''}\n"
    for i in range(40)
)


def test_reimport_of_unchanged_rows_writes_nothing(engine: Engine, write_csv) -> None:
    existing(engine)
    path = write_csv(FILE)
    first = import_csv(engine, path, chunk_rows=9)
    assert (first.added, first.updated, first.unchanged) == (37, 3, 0)  # p26 only gains tags
    before = raw(engine)
    again = import_csv(engine, path, chunk_rows=9)
    assert (again.added, again.updated, again.unchanged, again.rejected) == (0, 0, 40, 0)
    assert again.chunks == 0 and again.committed  # no write transaction at all
    assert raw(engine) == before  # no UPDATE (updated_at as it was), no audit row


def test_only_what_changed_is_written_on_reimport(engine: Engine, write_csv) -> None:
    import_csv(engine, write_csv(FILE))
    before = {r[1]: r for r in raw(engine)[:40]}  # subscribers by email
    assert "p6@example.org,P6,c,,\n" in FILE and "p8@example.org,P8,a;b,,\n" in FILE
    changed = FILE.replace("p6@example.org,P6,c,,", "p6@example.org,P6,c;d,,") \
                  .replace("p8@example.org,P8,a;b,,", "p8@example.org,Eight,a;b,,")
    report = import_csv(engine, write_csv(changed, "changed.csv"))
    assert (report.added, report.updated, report.unchanged) == (0, 2, 38)
    after = {r[1]: r for r in raw(engine)[:40]}
    assert {e for e in after if after[e] != before[e]} == {"p6@example.org", "p8@example.org"}
    assert people(engine)["p6@example.org"][2] == ("c", "d")
    assert people(engine)["p8@example.org"][0] == "Eight"


def test_status_changes_go_through_the_ladder_with_audit_rows(engine: Engine, write_csv) -> None:
    existing(engine)
    with engine.begin() as conn:
        add_subscriber(conn, "p30@example.org")
        set_status(conn, "p30@example.org", Status.COMPLAINED)
    path = write_csv("email,status\np17@example.org,bounced\np26@example.org,active\n"
                     "p30@example.org,unsubscribed\np3@example.org,unsubscribed\n")
    report = import_csv(engine, path)
    assert (report.updated, report.unchanged) == (2, 2)
    found = people(engine)
    assert [found[f"p{i}@example.org"][1] for i in (17, 26, 30, 3)] == \
        ["bounced", "unsubscribed", "complained", "unsubscribed"]
    imported = {k: n for k, n in trail(engine).items() if k[1] == Source.IMPORT}
    assert imported == {("p17@example.org", "import", "status", "active", "bounced"): 1,
                        ("p3@example.org", "import", "status", "active", "unsubscribed"): 1}


def test_changes_are_committed_in_chunks(engine: Engine, write_csv) -> None:
    report = import_csv(engine, write_csv(FILE), chunk_rows=7)
    assert report.chunks == 6 and report.added == 40 and report.committed
    assert 0 < report.longest_write_s
    with engine.connect() as conn:
        ids = conn.execute(select(subscribers.c.email).order_by(subscribers.c.id)).scalars()
        assert list(ids) == [f"p{i}@example.org" for i in range(40)]  # file order kept


def test_a_bad_row_at_the_end_of_a_long_file_changes_nothing(engine: Engine, write_csv) -> None:
    existing(engine)
    before = raw(engine)
    path = write_csv(FILE.encode() + b"late@example.org,J\xe9r\xf4me,,,\n")
    with pytest.raises(InputError) as info:
        import_csv(engine, path, chunk_rows=5)
    assert info.value.problems[0].line == 42 and "not UTF-8" in info.value.problems[0].message
    assert raw(engine) == before
    strict = import_csv(engine, write_csv(FILE + "broken,X,,,\n", "strict.csv"), strict=True,
                        chunk_rows=5)
    assert not strict.committed and strict.chunks == 0 and strict.problems[0].line == 42
    assert raw(engine) == before


def test_a_crash_while_applying_then_the_same_import_completes(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing(engine)
    path = write_csv(FILE)
    applied = merge_module.apply_chunk
    calls = []

    def crash_on_the_third(*args, **kwargs) -> None:
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        applied(*args, **kwargs)

    monkeypatch.setattr(merge_module, "apply_chunk", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        import_csv(engine, path, chunk_rows=10)
    partial = people(engine)
    assert set(partial) == {f"p{i}@example.org" for i in [*range(20), 26]}  # two chunks in
    assert partial["p17@example.org"][1] == "bounced"
    monkeypatch.undo()
    rerun = import_csv(engine, path, chunk_rows=10)
    assert (rerun.added, rerun.updated, rerun.unchanged) == (19, 1, 20)  # p26 gains its tags
    result, result_trail = people(engine), trail(engine)

    wipe(engine)
    existing(engine)
    import_csv(engine, path)
    assert result == people(engine)
    assert result_trail == trail(engine)  # no audit row twice, none missing


def test_an_address_erased_while_importing_is_not_added_back(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.audience import staging
    from newsletter.audience.erasure import erase

    secret = "s" * 40
    with engine.begin() as conn:
        add_subscriber(conn, "p33@example.org")
    next_range = staging.next_range

    def erase_first(conn, after, size):
        if after == 0:  # checked already; nothing applied yet
            with engine.begin() as other:
                erase(other, secret, "p33@example.org")
        return next_range(conn, after, size)

    monkeypatch.setattr(staging, "next_range", erase_first)
    report = import_csv(engine, write_csv(FILE), secret=secret, chunk_rows=10)
    assert "p33@example.org" not in people(engine)
    assert report.rejected == 1 and "erased at the person's request" in report.problems[0].message
    assert report.problems[0].line == 35


CHILD = """\
import sys
from newsletter.audience import import_csv
from newsletter.db import open_database
report = import_csv(open_database(sys.argv[1]), sys.argv[2], chunk_rows=int(sys.argv[3]))
print(report.summary(), flush=True)
"""


def _child(db_url: str, path: Path, chunk_rows: int) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-c", CHILD, db_url, str(path), str(chunk_rows)],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(subscribers)).scalar_one()


@pytest.mark.slow
def test_kill_9_while_applying_then_the_same_import_completes(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    existing(engine)
    rows = 6000
    path = tmp_path / "big.csv"
    path.write_text(FILE + "".join(f"q{i}@example.org,Q{i},x;y,,\n" for i in range(rows)),
                    encoding="utf-8")
    proc = _child(db_url, path, 60)
    try:
        while (seen := _count(engine)) == 3 and proc.poll() is None:
            pass  # wait for the first chunk to be committed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _count(engine)
    assert 3 < seen <= partial < 3 + 37 + rows  # killed between the first and the last chunk
    rerun = import_csv(engine, path)
    assert rerun.added == 3 + 37 + rows - partial and rerun.rejected == 0
    result, result_trail = people(engine), trail(engine)
    wipe(engine)
    existing(engine)
    import_csv(engine, path)
    assert result == people(engine) and result_trail == trail(engine)


@pytest.mark.slow
def test_another_writer_gets_in_while_a_long_import_runs(tmp_path: Path) -> None:
    """SQLite: a writer (a send, say) waiting for the lock gets it between two chunks instead
    of waiting for the whole import (issue 22: a 46 s import made a running send fail)."""
    db = tmp_path / "lock.db"
    engine = open_database(f"sqlite:///{db}")
    path = tmp_path / "big.csv"
    rows = 4000
    path.write_text("email,name,tags\n" + "".join(f"q{i}@example.org,Q{i},x\n"
                                                  for i in range(rows)), encoding="utf-8")
    proc = _child(f"sqlite:///{db}", path, 200)
    try:
        while _count(engine) == 0 and proc.poll() is None:
            pass  # the import is applying its chunks
        writer = sqlite3.connect(db, timeout=20, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # waits for the lock like any other writer
        inside = writer.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        writer.execute("UPDATE suppression_sync SET kind = kind")
        writer.execute("COMMIT")
        writer.close()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"{rows} added" in out
    assert 0 < inside < rows  # it wrote while the import was half way
    engine.dispose()


def test_someone_added_between_check_and_apply_is_updated_not_added_twice(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file was checked with p5 unknown; someone adds p5 before the chunk is applied: the
    import merges its row into theirs (no unique-key error, no second person)."""
    from newsletter.audience import staging

    next_range = staging.next_range

    def add_first(conn, after, size):
        if after == 0:
            with engine.begin() as other:
                add_subscriber(other, "p5@example.org", name="Someone Else", tags=["z"])
        return next_range(conn, after, size)

    monkeypatch.setattr(staging, "next_range", add_first)
    report = import_csv(engine, write_csv(FILE), chunk_rows=10)
    assert (report.added, report.updated, report.unchanged) == (39, 1, 0)
    found = people(engine)
    assert len(found) == 40 and found["p5@example.org"][:3] == ("P5", "active", ("a", "b", "z"))
    imported = {k: n for k, n in trail(engine).items()
                if k[0] == "p5@example.org" and k[1] == Source.IMPORT}
    assert imported == {("p5@example.org", "import", "tag", None, "a"): 1,
                        ("p5@example.org", "import", "tag", None, "b"): 1}


def test_a_new_persons_audit_rows_come_in_order(engine: Engine, write_csv) -> None:
    """Each new person: their status first, then each tag in order, whatever the chunking."""
    import_csv(engine, write_csv(FILE), chunk_rows=16)
    h, s = subscriber_history.c, subscribers.c
    with engine.connect() as conn:
        found: dict[str, list[tuple]] = {}
        for email, field, after in conn.execute(
                select(s.email, h.field, h.after).join(subscribers, s.id == h.subscriber_id)
                .order_by(h.id)):
            found.setdefault(email, []).append((field, after))
    assert len(found) == 40
    for i in range(40):
        tags = [("tag", t) for t in (["a", "b"] if i % 3 else ["c"])]
        status = "bounced" if i == 17 else "active"
        assert found[f"p{i}@example.org"] == [("status", status), *tags]


class _Clock:
    """time.perf_counter for the importer: every write transaction seems to take `held` s."""

    def __init__(self, held: float):
        self.now, self.held = 0.0, held

    def perf_counter(self) -> float:
        self.now += self.held  # called once as a chunk starts, once as it ends
        return self.now

    @staticmethod
    def sleep(_seconds: float) -> None:
        pass


def test_chunks_are_sized_by_each_databases_write_target(
    engine: Engine, write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's chunks shrink to hold its one write lock ~0.4 s; PostgreSQL's, where nobody
    waits for them but a writer to the same people, grow towards 2 s (fewer, larger ones)."""
    from newsletter.audience import importer

    monkeypatch.setattr(importer, "time", _Clock(held=1.0))
    rows = 7000
    path = write_csv("email,tags\n" + "".join(f"r{i}@example.org,x\n" for i in range(rows)))
    report = import_csv(engine, path)
    assert report.added == rows and report.longest_write_s == 1.0
    if engine.dialect.name == "postgresql":  # 2,000 then 4,000, then what is left
        assert report.chunks == 3
    else:  # 2,000, then 800, 320, then 200 at a time
        assert report.chunks == 3 + (rows - 3120 + 199) // 200


@pytest.mark.postgres
def test_someone_added_while_a_chunk_is_applied_is_merged_on_its_second_try(
        postgres_url: str, write_csv, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: p5 is added by someone else after the chunk looked its people up and
    before it inserts the new ones. The insert fails on the unique key; the chunk is rolled
    back and applied again, where p5 is known: merged, not added twice, counted once."""
    engine = open_database(postgres_url)
    insert_new = merge_module._insert_new_at_once
    tries = []

    def someone_first(conn, lines, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        tries.append(lines)
        if len(tries) == 1:
            with engine.begin() as other:
                add_subscriber(other, "p5@example.org", name="Someone Else", tags=["z"])
        return insert_new(conn, lines, *args, **kw)

    monkeypatch.setattr(merge_module, "_insert_new_at_once", someone_first)
    try:
        report = import_csv(engine, write_csv(FILE), chunk_rows=10)
        assert tries[0] == tries[1]  # the same chunk, again
        assert (report.added, report.updated, report.unchanged, report.rejected) == (39, 1, 0, 0)
        found = people(engine)
        assert len(found) == 40
        assert found["p5@example.org"][:3] == ("P5", "active", ("a", "b", "z"))
    finally:
        engine.dispose()
