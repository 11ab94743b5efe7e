"""CSV export in the import format, so an export imports back to the same subscribers; no cell
runs as a formula when staff open the file in a spreadsheet (newsletter.audience.cells)."""

from __future__ import annotations

import csv
from typing import TextIO

from sqlalchemy import ColumnElement, Connection, Engine, func, select, true

from newsletter.audience.cells import escape_cell
from newsletter.audience.subscribers import RESERVED_COLUMNS, iter_subscribers
from newsletter.db.tables import subscribers


def attribute_keys(conn: Connection, where: ColumnElement[bool] | None = None) -> list[str]:
    """Every attribute name used by the matching subscribers (computed in the database)."""
    if conn.dialect.name == "postgresql":
        query = select(func.jsonb_object_keys(subscribers.c.attributes)).distinct()
    else:
        each = func.json_each(subscribers.c.attributes).table_valued("key")
        query = select(each.c.key).distinct().select_from(
            subscribers.join(each, true())
        )
    if where is not None:
        query = query.where(where)
    return sorted(k for k in conn.execute(query).scalars() if k not in RESERVED_COLUMNS)


def export_csv(engine: Engine, out: TextIO, where: ColumnElement[bool] | None = None) -> int:
    """Write matching subscribers (all when `where` is None) as CSV; return how many."""
    with engine.connect() as conn:
        keys = attribute_keys(conn, where)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([escape_cell(k) for k in (*RESERVED_COLUMNS, *keys)])
    count = 0
    for sub in iter_subscribers(engine, where, batch_size=2000):
        writer.writerow([escape_cell(cell) for cell in (
            sub.email,
            sub.name,
            ";".join(sub.tags),
            sub.status.value,
            sub.created_at.isoformat().replace("+00:00", "Z"),
            *(_cell(sub.attributes.get(k)) for k in keys),
        )])
        count += 1
    return count


def _cell(value: object) -> str:
    return "" if value is None else str(value)
