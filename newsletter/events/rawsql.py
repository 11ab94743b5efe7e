"""Statements the webhook's hot path sends to the driver as they are, bypassing SQLAlchemy's
per-statement compilation and per-value processing (which cost more than the database's own
work at thousands of events a second).

A list of values goes to PostgreSQL as ONE array parameter in psycopg's binary format (`%b`):
the query text is the same whatever the list's length (psycopg parses it once), and binary
arrays cost a sixth of what text arrays do to build. SQLite gets `IN (?, ...)` lists of at most
CHUNK values (under its oldest limit of 999 parameters).

A query text that stays the same is prepared by psycopg after its fifth run, and PostgreSQL
then keeps one generic plan for it, made without the parameters' values, until the table's
statistics change. Made while `webhook_events` was small (a new database, or statistics taken
before a send's events came in), that plan reads the whole table, or a send's whole timeline,
for every look-up: 20 ms each at 100,000 events, measured. So the hot path's transactions
plan every statement for its values (`custom_plans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from newsletter.db.tables import webhook_events

CHUNK = 900


def postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def custom_plans(conn: Connection) -> None:
    """PostgreSQL: plan each statement of this transaction for its own parameters, never with
    a cached generic plan (see above)."""
    if postgres(conn):
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def marker(conn: Connection) -> str:
    """The driver's positional parameter marker (sqlite3: ?, psycopg: %s)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def array(kind: str) -> str:
    """A PostgreSQL array parameter of `kind` elements, sent in binary."""
    return f"%b::{kind}[]"


def chunks(conn: Connection, values: Sequence[Any]) -> list[Sequence[Any]]:
    """`values` in one piece on PostgreSQL, in pieces of at most CHUNK on SQLite."""
    if postgres(conn):
        return [values] if values else []
    return [values[start : start + CHUNK] for start in range(0, len(values), CHUNK)]


def among(conn: Connection, values: Sequence[Any], kind: str) -> tuple[str, tuple]:
    """(SQL, parameters) testing a column against `values` (one piece of `chunks`):
    `= ANY(%b::kind[])` on PostgreSQL, `IN (?, ...)` on SQLite."""
    if postgres(conn):
        return f"= ANY({array(kind)})", (list(values),)
    return f"IN ({', '.join('?' * len(values))})", tuple(values)


def unix(value: Any) -> int:
    """A stored UtcDateTime as the driver returns it (SQLite: text, PostgreSQL: a naive
    datetime) -> Unix seconds, read as the column type reads it; 0 for NULL."""
    found = webhook_events.c.occurred_at.type.process_result_value(value, None)
    return int(found.timestamp()) if found is not None else 0
