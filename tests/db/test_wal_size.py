"""SQLite: the write-ahead log file is cut back to newsletter.db.engine.WAL_FILE_LIMIT each time
the log starts over, so a burst does not leave a large file behind while connections stay open
(a running `serve`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from newsletter.db import engine as engine_module


def test_the_log_file_shrinks_back_when_the_log_starts_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "WAL_FILE_LIMIT", 128 * 1024)
    path = tmp_path / "wal.db"
    wal = path.with_name(path.name + "-wal")
    engine = engine_module.connect(f"sqlite:///{path}")
    try:
        with engine.connect() as keep_open:  # a connection that stays, as serve's do
            with engine.begin() as conn:  # a burst: about 4 MB through the log
                conn.execute(text("CREATE TABLE burst (n INTEGER, body TEXT)"))
                conn.execute(text("INSERT INTO burst VALUES (:n, :body)"),
                             [{"n": n, "body": "x" * 4000} for n in range(1000)])
            grown = wal.stat().st_size
            keep_open.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with engine.begin() as conn:  # the next write starts the log over
                conn.execute(text("INSERT INTO burst VALUES (1, 'y')"))
            assert grown > 3 * 2**20
            assert wal.stat().st_size <= 128 * 1024
    finally:
        engine.dispose()
