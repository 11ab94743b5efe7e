"""A send beside other writers: a long import (one transaction of many rows), or any process
holding the lock the ledger needs. The send waits for them (bounded retries with back-off
around each ledger write) instead of dying; a lock that outlasts its patience stops it
cleanly, with the reason and every outcome it knows; a full disk too.

The writer is a real process (tests/dispatch/long_writer.py); the send is a real `newsletter
send` over SMTP, held at one message (the SMTP server's gate) until the writer has its lock, so
the next ledger write meets it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import sends
from tests.dispatch.conftest import ROOT, SLUG, Pub, add_people, family_mail, ledger_states


def _writer(pub: Pub, mode: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tests.dispatch.long_writer", pub.db_url, mode,
                             str(seconds)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _send_beside(pub: Pub, server, mode: str, seconds: float, at: int = 12
                 ) -> tuple[subprocess.Popen, subprocess.Popen]:
    """Start an SMTP send; once message `at` is in flight, start the writer; let the message
    go once the writer holds its lock (its outcome is then recorded under the lock)."""
    server.mailbox.gate_at = at
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")
    try:
        assert server.mailbox.at_gate.wait(120), proc.communicate()
        writer = _writer(pub, mode, seconds)
    finally:
        server.mailbox.gate.set()
    return proc, writer


@pytest.mark.slow
def test_a_send_waits_for_a_long_import(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    people = add_people(pub.engine, 30)
    proc, writer = _send_beside(pub, server, "import", 3)
    out, err = proc.communicate(timeout=120)
    assert writer.wait(60) == 0 and writer.stdout.read().startswith("done")
    assert proc.returncode == 0, out + err
    assert family_mail(pub, server) == {p: ["en"] for p in people}
    assert all(s == ["accepted"] for s in ledger_states(pub).values())


@pytest.mark.slow
def test_a_lock_held_longer_than_sqlites_busy_timeout_does_not_kill_the_send(
        pub: Pub, smtp_server) -> None:
    """The failure of issue 22: an import holding SQLite's write lock past its 30 s busy
    timeout made the send die ("unexpected error ... database is locked") with a delivered
    message left unknown."""
    if not pub.db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL writers do not hold one lock over the whole database")
    server = smtp_server("plain")
    people = add_people(pub.engine, 30)
    proc, writer = _send_beside(pub, server, "import", 33)
    out, err = proc.communicate(timeout=180)
    assert writer.wait(60) == 0
    assert proc.returncode == 0, out + err
    assert "unexpected error" not in out + err
    assert family_mail(pub, server) == {p: ["en"] for p in people}
    assert all(s == ["accepted"] for s in ledger_states(pub).values())


@pytest.mark.slow
def test_a_lock_that_outlasts_the_patience_stops_the_send_cleanly(pub: Pub,
                                                                  smtp_server) -> None:
    server = smtp_server("plain")
    people = add_people(pub.engine, 30)
    pub.env["NEWSLETTER_LEDGER_PATIENCE"] = "1"
    proc, writer = _send_beside(pub, server, "hold", 0)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        writer.communicate("go\n", timeout=60)
    text = out + err
    assert proc.returncode == 1, text
    assert "unexpected error" not in text and "Traceback" not in text
    assert "stopped: the send ledger could not be written for 1 s (" in text
    # the message handed over under the lock was delivered: its outcome is told, not lost
    assert _delivered(server) == people[:12]
    assert f"not recorded: {people[11]} was accepted" in text
    status = pub.cli("status", SLUG).output
    assert f"unknown: {people[11]}" in status
    del pub.env["NEWSLETTER_LEDGER_PATIENCE"]
    resumed = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes",
                      "--accept-recipient", people[11])
    assert resumed.exit_code == 0, resumed.output
    assert family_mail(pub, server) == {p: ["en"] for p in people}
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.state)).scalar_one() == "completed"


def _delivered(server) -> list[str]:
    return [rcpts[0] for _, rcpts, _ in server.mailbox.messages]


@pytest.mark.slow
def test_a_full_disk_stops_the_send_cleanly(pub: Pub, smtp_server) -> None:
    """The sending process may not grow a file past a limit (RLIMIT_FSIZE: the write fails
    as on a full disk): the ledger's log hits it during the send, which stops cleanly, tells
    what it could not record, and resumes once there is room."""
    if not pub.db_url.startswith("sqlite"):
        pytest.skip("the database's files belong to the PostgreSQL server")
    import resource

    from sqlalchemy import text

    server = smtp_server("plain")
    people = add_people(pub.engine, 300)
    warm = pub.cli("send", SLUG, "--segment", "everyone", "--dry-run")  # the build's caches
    assert warm.exit_code == 0, warm.output
    with pub.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    limit = 1024 * 1024
    pub.env["NEWSLETTER_LEDGER_PATIENCE"] = "1"
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes",
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE,
                                                           (limit, limit)))
    out, err = proc.communicate(timeout=180)
    text_ = out + err
    assert proc.returncode == 1, text_
    assert "unexpected error" not in text_ and "Traceback" not in text_
    assert "stopped: the send ledger could not be written for 1 s (disk I/O error" in text_
    delivered = set(_delivered(server))
    assert 0 < len(delivered) < len(people)
    del pub.env["NEWSLETTER_LEDGER_PATIENCE"]
    states = ledger_states(pub)
    unknown = [p for p in people if states[p] == ["unknown"]]
    settle = [arg for p in unknown for arg in
              ("--accept-recipient" if p in delivered else "--resend-recipient", p)]
    resumed = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes",
                      *settle)
    assert resumed.exit_code == 0, resumed.output
    assert family_mail(pub, server) == {p: ["en"] for p in people}
