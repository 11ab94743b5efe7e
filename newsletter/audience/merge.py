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
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.audience.csvrows import ImportReport
from newsletter.audience.engaged import refresh_engaged
from newsletter.audience.history import Source
from newsletter.audience.model import RETIRED, Status
from newsletter.audience.staging import (
    SUBSCRIBER_IDS,
    analyze,
    empty,
    expand_tags,
    import_chunk,
    import_lacking,
    import_rows,
    import_tags,
    reject_erased,
)
from newsletter.audience.statuses import RANK, Change, apply_changes
from newsletter.db.tables import (
    UtcDateTime,
    subscriber_history,
    subscriber_tags,
    subscribers,
    webhook_events,
)

Lines = tuple[int, int]  # an inclusive range of staging lines
_IMPORT = Source.IMPORT.value


def _rank(status: ColumnElement[Any]) -> ColumnElement[int]:
    return case({s.value: n for s, n in RANK.items()}, value=status, else_=-1)


def _holds(conn: Connection, old: Any, new: Any) -> ColumnElement[bool]:
    """Every key of the JSON object `new` has that value in `old`."""
    if conn.dialect.name == "postgresql":
        return old.op("@>", return_type=Boolean)(new)
    return func.json_patch(old, new) == func.json(old)


def _merged(conn: Connection, old: Any, new: Any) -> ColumnElement[Any]:
    """The JSON object `old` with `new`'s keys written over it (`new` may be NULL)."""
    if conn.dialect.name == "postgresql":
        return old.op("||", return_type=JSONB)(func.coalesce(new, _empty(conn)))
    return func.json_patch(old, func.coalesce(new, _empty(conn)))


def _within(lines: Lines | None, column: Any = import_rows.c.line) -> ColumnElement[bool]:
    return true() if lines is None else column.between(*lines)


def _differs(conn: Connection) -> ColumnElement[bool]:
    """A staged row (`import_rows`) would change the known subscriber it names (`subscribers`)
    in name, attributes or status (never NULL; tags are `_lacking`'s)."""
    r, sub = import_rows.c, subscribers.c
    return or_(and_(r.name.is_not(None), r.name != sub.name),
               and_(r.attributes.is_not(None), not_(_holds(conn, sub.attributes, r.attributes))),
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
    """Drop the staged rows that would change nothing; return how many. PostgreSQL compares
    each row's tag list with the person's tags and leaves `import_tags` empty: the rows left
    are expanded where they are applied (the import's connection, or each chunk's own:
    newsletter.audience.importer), so a large import never expands them twice. SQLite
    compares the expanded tags (staging.expand_tags fills `import_tags` here)."""
    if conn.dialect.name == "postgresql":
        return _prune_by_person(conn)
    expand_tags(conn)
    r, sub = import_rows.c, subscribers.c
    conn.execute(insert(import_lacking).from_select(["line"], _lacking(None).distinct()))
    unchanged = and_(
        exists().where(sub.email_key == r.email_key, not_(_differs(conn))),
        ~exists().where(import_lacking.c.line == r.line),
    )
    return max(conn.execute(delete(import_rows).where(unchanged)).rowcount, 0)


def _prune_by_person(conn: Connection) -> int:
    """PostgreSQL: one pass; a row's tag list is held by the person's tags (read by key)."""
    r, sub, st = import_rows.c, subscribers.c, subscriber_tags.c
    theirs = (select(func.coalesce(func.jsonb_agg(st.tag), _empty_list()))
              .where(st.subscriber_id == sub.id).scalar_subquery())
    has_tags = or_(r.tags.is_(None), theirs.op("@>", return_type=Boolean)(r.tags))
    unchanged = exists().where(sub.email_key == r.email_key, not_(_differs(conn)), has_tags)
    return max(conn.execute(delete(import_rows).where(unchanged)).rowcount, 0)


def apply_chunk(conn: Connection, lines: Lines, report: ImportReport, *, now: dt.datetime,
                source: str, secret: str | None) -> None:
    """Apply the staged rows in `lines` inside the caller's write transaction; count them in
    the report."""
    at = bindparam("now", now, type_=UtcDateTime)
    reject_erased(conn, secret, report, lines)  # erased since the file was checked
    c = import_chunk.c
    if conn.dialect.name == "postgresql":
        _classify_known(conn, lines)
        _update_known(conn, lines, at, now)
        added = _insert_new_at_once(conn, lines, at, source)
        total = conn.execute(select(func.count()).where(_within(lines))).scalar_one()
    else:
        _classify(conn, lines)
        _update_known(conn, lines, at, now)
        _insert_new(conn, lines, at, source)
        added, total = conn.execute(select(
            func.coalesce(func.sum(case((c.new, 1), else_=0)), 0), func.count())
            .select_from(import_chunk)).one()
    _add_tags(conn, lines, at)
    _engagement_of_new(conn, lines)
    updated = conn.execute(select(func.count()).select_from(import_chunk)
                           .where(c.changed)).scalar_one()
    report.added += added
    report.updated += updated
    report.unchanged += total - added - updated


def _engagement_of_new(conn: Connection, lines: Lines) -> None:
    """New people whose address has events stored already (a person deleted and added back)
    get their last engagement from them (newsletter.audience.engaged); one index probe a row
    finds them, usually none (a scalar subquery: PostgreSQL never turns it into a pass over
    every stored event, as it may an EXISTS)."""
    r, c, e = import_rows.c, import_chunk.c, webhook_events.c
    some_event = select(literal(1)).where(e.email_key == r.email_key).limit(1)
    keys = conn.execute(select(r.email_key).where(
        _within(lines), ~exists().where(c.line == r.line, c.new.is_(false())),
        some_event.scalar_subquery().is_not(None))).scalars().all()
    if keys:
        refresh_engaged(conn, keys)


def looked_up(conn: Connection, lines: Lines) -> Any:
    """The statement that fills `import_chunk` with the rows in `lines` and their subscribers.

    SQLite: every row (subscriber None: new), by a join its planner runs through the key's
    index. PostgreSQL: known people's rows only (new people are `_insert_new_at_once`'s), each
    looking its person up by key: an index probe a row whatever the planner makes of the
    table's size, so a chunk of new people makes no pass over a million subscribers (a hash
    join's choice with a few thousand rows a chunk). tests/audience/test_import_plans.py holds
    both plans."""
    r, sub = import_rows.c, subscribers.c
    columns = ["line", "subscriber_id", "new", "changed"]
    if conn.dialect.name == "postgresql":
        found = select(sub.id).where(sub.email_key == r.email_key).scalar_subquery()
        probe = (select(r.line, found.label("subscriber_id")).where(_within(lines))
                 .cte("probe").prefix_with("MATERIALIZED"))  # one probe a row
        return insert(import_chunk).from_select(columns, select(
            probe.c.line, probe.c.subscriber_id, false(), false())
            .where(probe.c.subscriber_id.is_not(None)))
    return insert(import_chunk).from_select(columns, select(
        r.line, sub.id, sub.id.is_(None),
        case((sub.id.is_not(None), _differs(conn)), else_=false()))
        .select_from(import_rows.outerjoin(subscribers, sub.email_key == r.email_key))
        .where(_within(lines)))


def _classify(conn: Connection, lines: Lines) -> None:
    """Fill `import_chunk`: each row's subscriber (None: new), and whether it changes them."""
    empty(conn, import_chunk)
    conn.execute(looked_up(conn, lines))
    conn.execute(update(import_chunk).where(import_chunk.c.line.in_(_lacking(lines)))
                 .values(changed=True))


def _classify_known(conn: Connection, lines: Lines) -> None:
    """PostgreSQL: fill `import_chunk` with the rows of known people only, and what each
    changes, worked out only when there are some."""
    sub, c = subscribers.c, import_chunk.c
    empty(conn, import_chunk)
    if not conn.execute(looked_up(conn, lines)).rowcount:
        return
    analyze(conn, import_chunk)
    conn.execute(update(import_chunk).where(sub.id == c.subscriber_id, _staged(lines),
                                            _differs(conn)).values(changed=True))
    conn.execute(update(import_chunk).where(c.line.in_(_lacking(lines))).values(changed=True))


def _staged(lines: Lines) -> ColumnElement[bool]:
    """`import_chunk` rows with their `import_rows` row."""
    return and_(import_chunk.c.line == import_rows.c.line, _within(lines))


def _update_known(conn: Connection, lines: Lines, at: Any, now: dt.datetime) -> None:
    """Known people: name and attributes, then status changes through the ladder."""
    r, sub, c = import_rows.c, subscribers.c, import_chunk.c
    conn.execute(update(subscribers).where(sub.id == c.subscriber_id, c.changed, _staged(lines))
                 .values(name=func.coalesce(r.name, sub.name),
                         attributes=_merged(conn, sub.attributes, r.attributes),
                         updated_at=at))
    retiring = conn.execute(
        select(r.email_key, r.status)
        .select_from(import_chunk.join(import_rows, _staged(lines))
                     .join(subscribers, sub.id == c.subscriber_id))
        .where(c.changed, r.status.in_([s.value for s in RETIRED]),
               _rank(r.status) > _rank(sub.status))).all()
    apply_changes(conn, [Change(key, Status(status)) for key, status in retiring], now,
                  via=Source.IMPORT)


def _insert_new(conn: Connection, lines: Lines, at: Any, source: str) -> None:
    """New people, in file order (so their ids follow it), with an audit row each."""
    r, sub, c = import_rows.c, subscribers.c, import_chunk.c
    joined = func.coalesce(r.subscribed_at, at)
    retired = [s.value for s in RETIRED]
    conn.execute(insert(subscribers).from_select(
        ["email", "email_key", "name", "status", "attributes", "source", "created_at",
         "updated_at", "status_changed_at"],
        select(r.email, r.email_key, func.coalesce(r.name, ""),
               func.coalesce(r.status, Status.ACTIVE.value),
               func.coalesce(r.attributes, _empty(conn)), literal(source), joined, at,
               case((r.status.in_(retired), at), else_=joined))
        .select_from(import_chunk.join(import_rows, _staged(lines))).where(c.new)
        .order_by(c.line)))
    conn.execute(update(import_chunk).where(c.new, _staged(lines), sub.email_key == r.email_key)
                 .values(subscriber_id=sub.id))
    _history(conn, select(c.subscriber_id, at, literal(_IMPORT), literal("status"), null(),
                          func.coalesce(r.status, Status.ACTIVE.value))
             .select_from(import_chunk.join(import_rows, _staged(lines))).where(c.new)
             .order_by(c.line))


def _add_tags(conn: Connection, lines: Lines, at: Any) -> None:
    """Tags the people lack: the audit rows first, while "lacking" still means what it says."""
    t, c, has = import_tags.c, import_chunk.c, subscriber_tags.c
    tags = (select(c.subscriber_id, t.tag)
            .select_from(import_tags.join(import_chunk, c.line == t.line)
                         .outerjoin(subscriber_tags, and_(has.subscriber_id == c.subscriber_id,
                                                          has.tag == t.tag)))
            .where(_within(lines, t.line), has.subscriber_id.is_(None)))
    _history(conn, tags.with_only_columns(c.subscriber_id, at, literal(_IMPORT), literal("tag"),
                                          null(), t.tag).order_by(t.line, t.tag))
    conn.execute(insert(subscriber_tags).from_select(["subscriber_id", "tag"], tags))


def _insert_new_at_once(conn: Connection, lines: Lines, at: Any, source: str) -> int:
    """PostgreSQL: new people (in file order), their tags and their audit rows in one statement
    (the ids the insert returns feed the other two, so no per-row bookkeeping is written);
    return how many were added. Each gets the id taken for its row as its chunk was handed
    out (`new_id`: newsletter.audience.staging.copy_span), else the sequence's next one.
    New: the rows `looked_up` found nobody for, in this same transaction (an address someone
    adds in between makes the insert fail on its unique key: the importer rolls the chunk back
    and applies it again, newsletter.audience.importer)."""
    r, sub, t = import_rows.c, subscribers.c, import_tags.c
    joined = func.coalesce(r.subscribed_at, at)
    status = func.coalesce(r.status, Status.ACTIVE.value)
    added = (insert(subscribers).from_select(
        ["id", "email", "email_key", "name", "status", "attributes", "source", "created_at",
         "updated_at", "status_changed_at"],
        select(func.coalesce(r.new_id, func.nextval(SUBSCRIBER_IDS)),
               r.email, r.email_key, func.coalesce(r.name, ""), status,
               func.coalesce(r.attributes, _empty(conn)), literal(source), joined, at,
               case((r.status.in_([s.value for s in RETIRED]), at), else_=joined))
        # known people are in import_chunk (looked up by key): no pass over the subscribers
        .where(_within(lines), ~exists().where(import_chunk.c.line == r.line))
        .order_by(r.line))
        .returning(sub.id, sub.email_key).cte("new_people"))
    person = (select(added.c.id, r.line, status.label("status"))
              .select_from(added.join(import_rows, and_(r.email_key == added.c.email_key,
                                                        _within(lines))))
              .cte("new_lines"))
    their_tags = person.join(import_tags, and_(t.line == person.c.line, _within(lines, t.line)))
    tagged = insert(subscriber_tags).from_select(
        ["subscriber_id", "tag"], select(person.c.id, t.tag).select_from(their_tags))
    trail = union_all(
        select(person.c.id, person.c.line, literal(0).label("step"),
               literal("status").label("field"), person.c.status.label("after")),
        select(person.c.id, person.c.line, literal(1), literal("tag"), t.tag)
        .select_from(their_tags)).subquery()
    audited = insert(subscriber_history).from_select(
        ["subscriber_id", "at", "source", "field", "before", "after"],
        select(trail.c.id, at, literal(_IMPORT), trail.c.field, null(), trail.c.after)
        .order_by(trail.c.line, trail.c.step, trail.c.after))
    return conn.execute(select(func.count()).select_from(person)
                        .add_cte(tagged.cte("new_tags"), audited.cte("new_audit"))).scalar_one()


def _empty_list() -> ColumnElement[Any]:
    return literal_column("'[]'::jsonb", JSONB)


def _empty(conn: Connection) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return literal_column("'{}'::jsonb", JSONB)
    return literal_column("'{}'")


def _history(conn: Connection, rows: Any) -> None:
    conn.execute(insert(subscriber_history).from_select(
        ["subscriber_id", "at", "source", "field", "before", "after"], rows))
