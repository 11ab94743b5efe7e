"""The `subscribers` and `segments` commands, end to end through click on both databases."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text

from newsletter.cli import main
from newsletter.db import connect
from newsletter.db.tables import subscribers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def run(publication: Path, db_url: str):
    """Invoke `newsletter -C <sample publication copy> ...` against the test database."""

    def invoke(*args: str) -> Result:
        runner = CliRunner()
        return runner.invoke(main, ["-C", str(publication), *args],
                             env={"NEWSLETTER_DATABASE_URL": db_url}, catch_exceptions=False)

    return invoke


def test_sample_import_then_segments_show_live_counts(run, publication: Path) -> None:
    result = run("subscribers", "import", "subscribers/sample.csv")
    assert result.exit_code == 0, result.output
    assert "38 added, 0 updated, 0 unchanged, 0 rejected" in result.output
    again = run("subscribers", "import", "subscribers/sample.csv")
    assert "0 added, 0 updated, 38 unchanged, 0 rejected" in again.output
    seg = run("segments")
    assert seg.exit_code == 0
    counts = {}
    for line in seg.output.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) == 3 and cells[1].replace(",", "").isdigit():
            counts[cells[0]] = int(cells[1].replace(",", ""))
    assert counts["everyone"] == 38
    assert counts["egypt-press"] == 3
    assert 0 < counts["cyber"] < 38


def test_add_show_unsubscribe_and_list(run) -> None:
    added = run("subscribers", "add", "Nadia@Example.org", "--name", "Nadia", "--tag", "egypt",
                "--attr", "role=press")
    assert added.exit_code == 0 and "added Nadia@example.org (active)" in added.output
    shown = run("subscribers", "show", "nadia@EXAMPLE.ORG")
    assert "egypt" in shown.output and "attr role" in shown.output and "press" in shown.output
    assert run("subscribers", "unsubscribe", "nadia@example.org").exit_code == 0
    assert "unsubscribed" in run("subscribers", "show", "nadia@example.org").output
    # `add` without --resubscribe keeps the address retired, and says so.
    again = run("subscribers", "add", "nadia@example.org", "--tag", "trade")
    assert "(unsubscribed)" in again.output and "stays out of every segment" in again.output
    listed = run("subscribers", "list", "--segment", "everyone")
    assert "0 subscribers in everyone" in listed.output
    back = run("subscribers", "add", "nadia@example.org", "--resubscribe")
    assert "(active)" in back.output
    assert "1 subscribers in everyone" in run("subscribers", "list", "--segment",
                                              "everyone").output


def test_user_errors_are_one_line_exit_2(run, publication: Path) -> None:
    unknown = run("subscribers", "show", "ghost@example.org")
    assert unknown.exit_code == 2
    assert unknown.output.strip() == "ghost@example.org: error: no such subscriber"
    bad = run("subscribers", "add", "not-an-address")
    assert bad.exit_code == 2 and "invalid email address" in bad.output
    seg = run("subscribers", "list", "--segment", "nope")
    assert seg.exit_code == 2 and "segments.yaml: error: unknown segment 'nope'" in seg.output
    (publication / "x.csv").write_bytes(b"name\nAnn\n")
    nocol = run("subscribers", "import", str(publication / "x.csv"))
    assert nocol.exit_code == 2 and "x.csv:1: error: the header has no 'email' column" in \
        nocol.output
    assert "Traceback" not in nocol.output


def test_import_reports_bad_rows_and_strict_imports_nothing(run, publication: Path) -> None:
    path = publication / "people.csv"
    path.write_text("email,name\na@example.org,A\nbroken,B\na@example.org,C\n", encoding="utf-8")
    strict = run("subscribers", "import", str(path), "--strict")
    assert strict.exit_code == 2
    assert "people.csv:3: error: invalid email address 'broken'" in strict.output
    assert "people.csv:4: error: duplicate of row 2" in strict.output
    assert "nothing imported (--strict)" in strict.output
    assert "0 subscribers" in run("subscribers", "list").output
    loose = run("subscribers", "import", str(path))
    assert loose.exit_code == 1  # some rows failed; the good ones are in
    assert "1 added, 0 updated, 0 unchanged, 2 rejected" in loose.output
    assert "1 subscribers" in run("subscribers", "list").output


def test_bad_segments_file_names_file_and_line(run, publication: Path) -> None:
    (publication / "subscribers" / "segments.yaml").write_text(
        "segments:\n  loop: {segment: loop}\n", encoding="utf-8")
    result = run("segments")
    assert result.exit_code == 2
    assert "segments.yaml:2: error: segment 'loop' refers to itself" in result.output


def test_export_round_trips_through_import(run, publication: Path, tmp_path: Path,
                                           db_url: str) -> None:
    run("subscribers", "import", "subscribers/sample.csv", "--tag", "weekly")
    run("subscribers", "unsubscribe", "amara.okafor@example.org")
    first = run("subscribers", "export")
    assert first.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert len(rows) == 38
    amara = next(r for r in rows if r["email"] == "amara.okafor@example.org")
    assert amara["status"] == "unsubscribed" and amara["role"] == "policymaker"
    assert "weekly" in amara["tags"].split(";")
    segment = run("subscribers", "export", "--segment", "egypt-press")
    assert len(list(csv.DictReader(io.StringIO(segment.stdout)))) == 3

    # Import the export into an empty database: exporting that gives the same file.
    target = tmp_path / "export.csv"
    target.write_text(first.stdout, encoding="utf-8")
    engine = connect(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM subscriber_tags"))
        conn.execute(text("DELETE FROM subscribers"))
    engine.dispose()
    assert "38 added" in run("subscribers", "import", str(target)).output
    out = tmp_path / "again.csv"
    assert run("subscribers", "export", "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == first.stdout


@pytest.mark.slow
def test_killed_import_leaves_the_database_as_it_was(publication: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of a real import (SQLite): the open transaction is simply lost."""
    db = tmp_path / "kill.db"
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": f"sqlite:///{db}"}
    cli = [sys.executable, "-m", "newsletter", "-C", str(publication)]
    subprocess.run([*cli, "subscribers", "add", "keep@example.org", "--name", "Keep"],
                   env=env, check=True, capture_output=True)
    fifo = tmp_path / "feed.csv"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*cli, "subscribers", "import", str(fifo)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = connect(f"sqlite:///{db}")
    try:
        with fifo.open("w", encoding="utf-8") as feed:
            feed.write("email,name\nkeep@example.org,Renamed\n")
            feed.writelines(f"p{i}@example.org,P{i}\n" for i in range(20000))
            feed.flush()
            # Wait until the importer holds SQLite's write lock: it has written rows.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                raw = engine.raw_connection()
                try:
                    raw.driver_connection.execute("PRAGMA busy_timeout=0")
                    raw.driver_connection.execute("BEGIN IMMEDIATE")
                    raw.driver_connection.execute("ROLLBACK")
                    time.sleep(0.05)
                except Exception as exc:  # sqlite3.OperationalError: database is locked
                    assert "locked" in str(exc)
                    break
                finally:
                    raw.close()
            else:
                pytest.fail("the import never started writing")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 1
        assert conn.execute(select(subscribers.c.name)).scalar_one() == "Keep"
    engine.dispose()
