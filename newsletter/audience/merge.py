"""Applying staged import rows to the subscribers: set-based statements, a chunk at a time.

What a row does to a known subscriber: a non-empty name replaces theirs, its attributes are
merged over theirs, its tags are added (never removed), and its `status` may retire them
(through the status ladder, newsletter.audience.statuses: an import never makes a retired
address active). A row that would change none of that is *unchanged*: `prune_unchanged` drops
such rows before anything is written, so re-importing a file writes nothing for them (no
UPDATE, no audit row). New people are inserted with their tags and an audit row each.

Every statement works on a range of staging lines; `apply_chunk` runs inside one write
transaction of the caller's, and compares with the subscribers as they are then, so a change
made by someone else since the file was checked (an unsubscribe, an erasure) is respected.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.audience.csvrows import ImportReport
from newsletter.audience.history import Source
from newsletter.audience.model import RETIRED, Status
from newsletter.audience.staging import (
    analyze,
    empty,
    import_chunk,
    import_lacking,
    import_rows,
    import_tags,
    reject_erased,
)
from newsletter.audience.statuses import RANK, Change, apply_changes
from newsletter.db.tables import UtcDateTime, subscriber_history, subscriber_tags, subscribers

Lines = tuple[int, int]  # an inclusive range of staging lines
_IMPORT = Source.IMPORT.value


def _rank(status: ColumnElement[Any]) -> ColumnElement[int]:
    return case({s.value: n for s, n in RANK.items()}, value=status, else_=-1)


def _json(conn: Connection) -> dict[str, Any]:
    """The dialect's JSON object operations: `holds(old, new)` (every key of new has that
    value in old) and `merged(old, new)` (new's keys written over old)."""
    if conn.dialect.name == "postgresql":
        empty = literal_column("'{}'::jsonb", JSONB)
        return {"holds": lambda old, new: old.op("@>", return_type=Boolean)(new),
                "merged": lambda old, new: old.op("||", return_type=JSONB)(
                    func.coalesce(new, empty))}
    return {"holds": lambda old, new: func.json_patch(old, new) == func.json(old),
            "merged": lambda old, new: func.json_patch(old, func.coalesce(new, "{}"))}


def _within(lines: Lines | None, column: Any = import_rows.c.line) -> ColumnElement[bool]:
    return true() if lines is None else column.between(*lines)


def _differs(conn: Connection) -> ColumnElement[bool]:
    """A staged row (`import_rows`) would change the known subscriber it names (`subscribers`)
    in name, attributes or status (never NULL; tags are `_lacking`'s)."""
    r, sub = import_rows.c, subscribers.c
    holds = _json(conn)["holds"]
    return or_(and_(r.name.is_not(None), r.name != sub.name),
               and_(r.attributes.is_not(None), not_(holds(sub.attributes, r.attributes))),
               _rank(r.status) > _rank(sub.status))


def _lacking(lines: Lines | None) -> Any:
    """The staged lines (in `lines`) of known people who lack a tag the row gives them."""
    t, row = import_tags.c, import_rows.alias("lacking_row")
    person, has = subscribers.alias("lacking_person"), subscriber_tags.alias("lacking_tag")
    return (select(t.line)
            .select_from(import_tags.join(row, row.c.line == t.line)
                         .join(person, person.c.email_key == row.c.email_key)
                         .outerjoin(has, and_(has.c.subscriber_id == person.c.id,
                                              has.c.tag == t.tag)))
            .where(_within(lines, t.line), _within(lines, row.c.line),
                   has.c.subscriber_id.is_(None)))


def prune_unchanged(conn: Connection) -> int:
    """Drop the staged rows that would change nothing; return how many."""
    r, sub = import_rows.c, subscribers.c
    conn.execute(insert(import_lacking).from_select(["line"], _lacking(None).distinct()))
    analyze(conn, import_lacking)
    unchanged = and_(
        exists().where(sub.email_key == r.email_key, not_(_differs(conn))),
        ~exists().where(import_lacking.c.line == r.line),
    )
    return max(conn.execute(delete(import_rows).where(unchanged)).rowcount, 0)


def apply_chunk(conn: Connection, lines: Lines, report: ImportReport, *, now: dt.datetime,
                source: str, secret: str | None) -> None:
    """Apply the staged rows in `lines` inside the caller's write transaction; count them in
    the report."""
    r, sub, c = import_rows.c, subscribers.c, import_chunk.c
    at = bindparam("now", now, type_=UtcDateTime)
    reject_erased(conn, secret, report, lines)  # erased since the file was checked
    empty(conn, import_chunk)
    known = sub.id.is_not(None)
    conn.execute(insert(import_chunk).from_select(
        ["line", "subscriber_id", "new", "changed"],
        select(r.line, sub.id, sub.id.is_(None), case((known, _differs(conn)), else_=false()))
        .select_from(import_rows.outerjoin(subscribers, sub.email_key == r.email_key))
        .where(_within(lines))))
    conn.execute(update(import_chunk).where(c.line.in_(_lacking(lines))).values(changed=True))
    staged = and_(c.line == r.line, _within(lines))
    # Known people: name and attributes, then status changes through the ladder.
    conn.execute(update(subscribers).where(sub.id == c.subscriber_id, c.changed, staged)
                 .values(name=func.coalesce(r.name, sub.name),
                         attributes=_json(conn)["merged"](sub.attributes, r.attributes),
                         updated_at=at))
    retiring = conn.execute(
        select(r.email_key, r.status)
        .select_from(import_chunk.join(import_rows, staged)
                     .join(subscribers, sub.id == c.subscriber_id))
        .where(c.changed, r.status.in_([s.value for s in RETIRED]),
               _rank(r.status) > _rank(sub.status))).all()
    apply_changes(conn, [Change(key, Status(status)) for key, status in retiring], now,
                  via=Source.IMPORT)
    # New people, in file order (so their ids follow it), with an audit row each.
    joined = func.coalesce(r.subscribed_at, at)
    conn.execute(insert(subscribers).from_select(
        ["email", "email_key", "name", "status", "attributes", "source", "created_at",
         "updated_at", "status_changed_at"],
        select(r.email, r.email_key, func.coalesce(r.name, ""),
               func.coalesce(r.status, Status.ACTIVE.value),
               func.coalesce(r.attributes, _empty(conn)), literal(source), joined, at,
               case((r.status.in_([s.value for s in RETIRED]), at), else_=joined))
        .select_from(import_chunk.join(import_rows, staged)).where(c.new).order_by(c.line)))
    conn.execute(update(import_chunk).where(c.new, staged, sub.email_key == r.email_key)
                 .values(subscriber_id=sub.id))
    _history(conn, select(c.subscriber_id, at, literal(_IMPORT), literal("status"), null(),
                          func.coalesce(r.status, Status.ACTIVE.value))
             .select_from(import_chunk.join(import_rows, staged)).where(c.new)
             .order_by(c.line))
    # Tags the people lack: the audit rows first, while "lacking" still means what it says.
    t = import_tags.c
    tags = (select(c.subscriber_id, t.tag)
            .select_from(import_tags.join(import_chunk, c.line == t.line)
                         .outerjoin(subscriber_tags, and_(
                             subscriber_tags.c.subscriber_id == c.subscriber_id,
                             subscriber_tags.c.tag == t.tag)))
            .where(_within(lines, t.line), subscriber_tags.c.subscriber_id.is_(None)))
    _history(conn, tags.with_only_columns(c.subscriber_id, at, literal(_IMPORT), literal("tag"),
                                          null(), t.tag).order_by(t.line, t.tag))
    conn.execute(insert(subscriber_tags).from_select(["subscriber_id", "tag"], tags))
    added, updated, total = conn.execute(select(
        func.coalesce(func.sum(case((c.new, 1), else_=0)), 0),
        func.coalesce(func.sum(case((c.changed, 1), else_=0)), 0),
        func.count()).select_from(import_chunk)).one()
    report.added += added
    report.updated += updated
    report.unchanged += total - added - updated


def _empty(conn: Connection) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return literal_column("'{}'::jsonb", JSONB)
    return literal_column("'{}'")


def _history(conn: Connection, rows: Any) -> None:
    conn.execute(insert(subscriber_history).from_select(
        ["subscriber_id", "at", "source", "field", "before", "after"], rows))
