"""CSV formula injection: `subscribers export` never writes a cell a spreadsheet runs as a formula
(OWASP: a cell starting with =, +, -, @, tab or CR), and importing that file gives back exactly
the values exported, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from newsletter.audience import add_subscriber, export_csv, import_csv, iter_subscribers
from newsletter.db import open_database
from newsletter.db.engine import write_connection
from tests.conftest import examples

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet takes for a formula
HOSTILE = {
    "=cmd|'calc'!A0@example.org": ("=HYPERLINK(\"http://evil.example\",\"Click\")",
                                       ["=cmd", "+tag"], {"org": "@SUM(1+1)", "phone": "+1 202"}),
    "-minus@example.org": ("-2+3", ["-x"], {"score": "-5", "note": "'=already quoted"}),
    "+plus@example.org": ("'-x", ["@at"], {"=key": "=1+1", "plain": "'plain"}),
    "calm@example.org": ("Calm Reader", ["energy"], {"org": "Example"}),
}


def _people(engine: Engine) -> dict[str, tuple]:
    return {s.email: (s.name, s.tags, s.attributes, s.status.value)
            for s in iter_subscribers(engine)}


def test_export_is_spreadsheet_safe_and_imports_back_to_the_same_values(
        engine: Engine, tmp_path: Path) -> None:
    with write_connection(engine) as conn, conn.begin():
        for email, (name, tags, attributes) in HOSTILE.items():
            add_subscriber(conn, email, name=name, tags=tags, attributes=attributes)
    before = _people(engine)
    out = io.StringIO()
    assert export_csv(engine, out) == len(HOSTILE)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c.startswith(TRIGGERS)]  # nothing a spreadsheet runs
    assert "'=HYPERLINK(\"http://evil.example\",\"Click\")" in cells
    assert "''=already quoted" in cells and "'=key" in rows[0]
    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        report = import_csv(fresh, path)
        assert report.added == len(HOSTILE) and not report.problems, report.problems
        assert _people(fresh) == before
    finally:
        fresh.dispose()
    again = import_csv(engine, path)  # back over the same subscribers: nothing to change
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(HOSTILE))
    assert _people(engine) == before


@settings(max_examples=examples(200), deadline=None)
@given(st.text(alphabet=st.sampled_from("=+-@\t\r'a 1é"), max_size=8) | st.text(max_size=8))
def test_escaping_round_trips_and_never_starts_a_formula(value: str) -> None:
    from newsletter.audience.cells import TRIGGERS as OURS
    from newsletter.audience.cells import escape_cell, unescape_cell

    assert set(OURS) == set(TRIGGERS)
    written = escape_cell(value)
    assert not written.startswith(TRIGGERS)
    assert unescape_cell(written) == value
    assert written == value or written == "'" + value
