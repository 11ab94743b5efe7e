"""A process that applies mailbox readings one transaction each, for the concurrency test.

    python -m tests.events.mailbox_worker DB_URL FOLDER ORDER GO_FILE

reads every .eml in FOLDER (named `<group>-<n>.eml`), waits for GO_FILE to exist (so two workers
start together), and applies the readings group by group, each group's in ORDER (`forward` or
`backward`), one transaction each, bypassing the one-reader lock.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from newsletter.compose.schema import BouncesConfig
from newsletter.db import open_database
from newsletter.db.engine import write_connection
from newsletter.events.mailbox import apply_readings
from newsletter.providers.bounces.classify import Context, read
from tests.providers.bounce_expectations import RETURN_PATH, SECRET


def main(url: str, folder: str, order: str, go: str) -> None:
    config = BouncesConfig(imap_url="imap://bounces@127.0.0.1/INBOX", return_path=RETURN_PATH)
    ctx = Context(config, [SECRET], "example.org")
    groups: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).glob("*.eml")):
        groups.setdefault(path.name.split("-")[0], []).append(path)
    readings = [read(p.read_bytes(), ctx) for _, paths in sorted(groups.items())
                for p in (paths if order == "forward" else reversed(paths))]
    engine = open_database(url)
    deadline = time.monotonic() + 60
    while not Path(go).exists():  # the start signal
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.01)
    for reading in readings:
        for attempt in range(5):
            try:
                with write_connection(engine) as conn, conn.begin():
                    apply_readings(conn, [reading], secret=SECRET)
                break
            except Exception as exc:  # a PostgreSQL deadlock between the two: try again
                if "deadlock" not in str(exc) or attempt == 4:
                    raise
    engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:5])
