"""Audience fixtures: an upgraded database engine on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from newsletter.db import open_database


@pytest.fixture()
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = open_database(migrated_db_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def write_csv(tmp_path: Path):
    """Write text (or bytes) to a CSV file and return its path."""

    def write(content: str | bytes, name: str = "people.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write
