"""`subscribers add` and `unsubscribe` while another process keeps writing (as `serve` does with
webhooks and pruning): on SQLite a read-then-write transaction must take the write lock up
front, or a commit in between fails it at once with "database is locked" (no busy wait)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from tests.web.public.conftest import Site

WRITER = textwrap.dedent("""
    import sys, datetime as dt
    from sqlalchemy import update
    from newsletter.db import open_database
    from newsletter.db.engine import write_connection
    from newsletter.db.tables import subscribers
    engine = open_database(sys.argv[1])
    print("ready", flush=True)
    while True:
        with write_connection(engine) as conn, conn.begin():
            conn.execute(update(subscribers).where(subscribers.c.email_key == "busy@example.org")
                         .values(updated_at=dt.datetime.now(dt.UTC)))
""")


@pytest.mark.slow
def test_add_and_unsubscribe_succeed_beside_a_busy_writer(site: Site) -> None:
    site.add("busy@example.org")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, site.env["NEWSLETTER_DATABASE_URL"]],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        runner = CliRunner()
        failures = []
        for n in range(30):
            address = f"reader{n}@example.org"
            for args in (["subscribers", "add", address, "--name", f"Reader {n}"],
                         ["subscribers", "unsubscribe", address]):
                result = runner.invoke(main, ["-C", str(site.root), *args], env=site.env)
                if result.exit_code != 0:
                    failures.append((args, result.output))
        assert writer.poll() is None, "the writer process died"
    finally:
        writer.kill()
        writer.wait()
    assert failures == []
    assert {site.status(f"reader{n}@example.org") for n in range(30)} == {"unsubscribed"}
