"""Another writer beside a send, as a real process: `python -m tests.dispatch.long_writer URL
MODE SECONDS`.

- `import`: a long import stand-in: one transaction inserting subscribers for SECONDS (as a
  1M-row CSV imported in one transaction did), then COMMIT;
- `hold`: holds the lock the send's ledger needs (SQLite: the database's write lock;
  PostgreSQL: the row of send #1) for SECONDS, or until a line arrives on stdin when SECONDS
  is 0.

Prints `locked` once it holds the lock, `done` once it committed.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def main() -> None:
    url, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, isolation_level="AUTOCOMMIT")
    sqlite = parsed.get_backend_name() == "sqlite"
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if sqlite else "BEGIN")
        if not sqlite:  # the lock a ledger write of send #1 needs
            conn.execute(text("SELECT id FROM sends WHERE id = 1 FOR UPDATE"))
        print("locked", flush=True)
        deadline = time.monotonic() + seconds
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        row = 0
        if mode == "import":
            while time.monotonic() < deadline:
                conn.execute(text(
                    "INSERT INTO subscribers (email, email_key, name, status, attributes,"
                    " source, created_at, updated_at, status_changed_at) VALUES"
                    " (:e, :e, 'Imported', 'unsubscribed', '{}', 'import', :t, :t, :t)"),
                    [{"e": f"imported{row + n:07d}@example.net", "t": now} for n in range(500)])
                row += 500
        elif seconds:
            time.sleep(seconds)
        else:
            sys.stdin.readline()
        conn.exec_driver_sql("COMMIT")
    print(f"done {row}", flush=True)


if __name__ == "__main__":
    main()
