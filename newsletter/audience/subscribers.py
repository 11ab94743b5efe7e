"""The subscribers service: look up, add, change status and stream subscribers."""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, func, insert, select, update

from newsletter.audience.engaged import refresh_engaged
from newsletter.audience.erasure import Secrets, refuse_erased
from newsletter.audience.history import Change, Source, record, tag_changes
from newsletter.audience.model import (
    Status,
    Subscriber,
    clean_name,
    email_key,
    normalize_email,
    normalize_tag,
    utcnow,
)
from newsletter.audience.statuses import Change as StatusChange
from newsletter.audience.statuses import apply_changes
from newsletter.core.errors import InputError, Problem
from newsletter.db.tables import subscriber_tags, subscribers

#: CSV columns with a meaning of their own; every other column is an attribute.
RESERVED_COLUMNS = ("email", "name", "tags", "status", "subscribed_at")


def tags_of(conn: Connection, ids: Iterable[int]) -> dict[int, set[str]]:
    """Tags of each subscriber id (ids without tags are absent)."""
    found: dict[int, set[str]] = defaultdict(set)
    ids = list(ids)
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = conn.execute(
            select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag).where(
                subscriber_tags.c.subscriber_id.in_(chunk)
            )
        )
        for sid, tag in rows:
            found[sid].add(tag)
    return found


def _record(row: Row, tags: set[str]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=Status(row.status),
        tags=tuple(sorted(tags)),
        attributes=dict(row.attributes or {}),
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status_changed_at=row.status_changed_at,
        paused_until=row.paused_until,
        consented_at=row.consented_at,
    )


def get_subscriber(conn: Connection, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    try:
        key = email_key(normalize_email(email))
    except ValueError:
        return None
    row = conn.execute(select(subscribers).where(subscribers.c.email_key == key)).first()
    if row is None:
        return None
    return _record(row, tags_of(conn, [row.id]).get(row.id, set()))


def require_subscriber(conn: Connection, email: str) -> Subscriber:
    """Like get_subscriber, but an unknown address is an InputError."""
    found = get_subscriber(conn, email)
    if found is None:
        raise InputError(Problem(email, None, "no such subscriber"))
    return found


def add_subscriber(
    conn: Connection,
    email: str,
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
    attributes: dict[str, Any] | None = None,
    source: str = "cli",
    resubscribe: bool = False,
    via: Source = Source.CLI,
    secrets: Secrets = None,
) -> tuple[Subscriber, bool]:
    """Add a subscriber, or merge name, tags and attributes into a known one.

    Returns (subscriber, created). A new address on the erasure list is refused (InputError
    saying why; checking needs `secrets`, the rotation list, once the list holds anything):
    only the person's confirmed sign-up, which takes it off the list first, adds it again.
    The name is cleaned (`clean_name`) and attribute values are stored as text. A retired
    address (unsubscribed, bounced, complained) stays retired unless `resubscribe` is true:
    the person's own consent, applied through the status ladder
    (newsletter.audience.statuses) like every other status change. Every change (status,
    name, attributes, tags) goes into the audit trail as made `via` the given source.
    """
    try:
        address = normalize_email(email)
        tag_set = {normalize_tag(t) for t in tags}
    except ValueError as exc:
        raise InputError(Problem(email, None, str(exc))) from None
    attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
    name = clean_name(name) if name else None
    bad = sorted(set(attrs) & set(RESERVED_COLUMNS))
    if bad:
        raise InputError(Problem(email, None, f"'{bad[0]}' is not an attribute name (reserved)"))
    now = utcnow()
    key = email_key(address)
    row = conn.execute(select(subscribers).where(subscribers.c.email_key == key)).first()
    if row is None:
        refuse_erased(conn, secrets, address)
        sid = conn.execute(
            insert(subscribers)
            .values(
                email=address, email_key=key, name=name or "", status=Status.ACTIVE,
                attributes=attrs, source=source, created_at=now, updated_at=now,
                status_changed_at=now,
            )
            .returning(subscribers.c.id)
        ).scalar_one()
        refresh_engaged(conn, [key])  # events may be stored for the address already
        created = True
        trail = [Change(sid, "status", None, Status.ACTIVE.value)]
    else:
        sid, created = row.id, False
        trail = []
        values: dict[str, Any] = {}
        if name and name != row.name:
            values["name"] = name
            trail.append(Change(sid, "name", row.name, name))
        before = row.attributes or {}
        merged = {**before, **attrs}
        if merged != before:
            values["attributes"] = merged
            trail += [Change(sid, "attribute", _attribute(k, before.get(k)), _attribute(k, v))
                      for k, v in sorted(attrs.items()) if before.get(k) != v]
        if values:
            conn.execute(
                update(subscribers).where(subscribers.c.id == sid).values(updated_at=now, **values)
            )
    if resubscribe:
        apply_changes(conn, [StatusChange(key, Status.ACTIVE, confirmed=True)], now, via=via)
    known = tags_of(conn, [sid]).get(sid, set())
    new_tags = tag_set - known
    if new_tags:
        conn.execute(insert(subscriber_tags), [{"subscriber_id": sid, "tag": t} for t in new_tags])
        if not created:
            conn.execute(update(subscribers).where(subscribers.c.id == sid).values(updated_at=now))
    record(conn, via, trail + tag_changes(sid, added=new_tags), now)
    result = get_subscriber(conn, address)
    assert result is not None
    return result, created


def _attribute(key: str, value: str | None) -> str | None:
    """An attribute as the audit trail records it."""
    return None if value is None else f"{key}={value}"


def set_status(conn: Connection, email: str, status: Status | str,
               via: Source = Source.CLI, *, confirmed: bool = False) -> Subscriber:
    """Ask for a status change of a known subscriber through the status ladder
    (newsletter.audience.statuses): retiring only climbs (a bounced address never becomes
    merely unsubscribed), and only consent (`confirmed` for bounced or complained addresses)
    makes a retired address active. The change goes into the audit trail as made `via` the
    given source. InputError if the address is unknown."""
    current = require_subscriber(conn, email)
    apply_changes(conn, [StatusChange(email_key(current.email), Status(status),
                                      confirmed=confirmed)], via=via)
    return require_subscriber(conn, email)


def set_statuses(conn: Connection, changes: Iterable[StatusChange],
                 via: Source = Source.CLI) -> int:
    """Apply many status changes at once (the batch API; see newsletter.audience.statuses)."""
    return apply_changes(conn, list(changes), via=via)


def unsubscribe(conn: Connection, email: str, via: Source = Source.CLI) -> Subscriber:
    """Unsubscribe an address (it stays unsubscribed through every later import); a bounced or
    complained address keeps its stronger status."""
    return set_status(conn, email, Status.UNSUBSCRIBED, via)


def count_subscribers(conn: Connection, where: ColumnElement[bool] | None = None) -> int:
    query = select(func.count()).select_from(subscribers)
    if where is not None:
        query = query.where(where)
    return conn.execute(query).scalar_one()


def iter_batches(
    engine: Engine | Connection,
    where: ColumnElement[bool] | None = None,
    batch_size: int = 1000,
) -> Iterator[list[Subscriber]]:
    """Subscribers matching `where`, in id order, `batch_size` at a time; memory stays flat
    whatever the list size, and no cursor is held open between batches.

    Without `where`: keyset pagination over the primary key. With it: one query finds the
    matching ids (kept as 8-byte integers), then each batch reads its rows by id. A segment's
    condition is set-based (newsletter.audience.segments): evaluating it once, rather than
    once per page, keeps a long listing linear. Membership is therefore decided when the
    iteration starts; the rows themselves are read as each batch is reached."""
    if where is None:
        yield from _keyset(engine, batch_size)
        return
    ids = array("q")
    with nullcontext(engine) if isinstance(engine, Connection) else engine.connect() as conn:
        found = conn.execution_options(stream_results=True).execute(
            select(subscribers.c.id).where(where).order_by(subscribers.c.id))
        for part in found.scalars().partitions(10_000):
            ids.extend(part)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size].tolist()
        query = select(subscribers).where(subscribers.c.id.in_(chunk)).order_by(subscribers.c.id)
        with nullcontext(engine) if isinstance(engine, Connection) else engine.connect() as conn:
            rows = conn.execute(query).all()
            tags = tags_of(conn, [r.id for r in rows])
        if rows:
            yield [_record(r, tags.get(r.id, set())) for r in rows]


def _keyset(engine: Engine | Connection, batch_size: int) -> Iterator[list[Subscriber]]:
    last = 0
    while True:
        query = select(subscribers).where(subscribers.c.id > last)
        query = query.order_by(subscribers.c.id).limit(batch_size)
        with nullcontext(engine) if isinstance(engine, Connection) else engine.connect() as conn:
            rows = conn.execute(query).all()
            tags = tags_of(conn, [r.id for r in rows])
        if not rows:
            return
        yield [_record(r, tags.get(r.id, set())) for r in rows]
        last = rows[-1].id


def iter_subscribers(
    engine: Engine | Connection, where: ColumnElement[bool] | None = None, batch_size: int = 1000
) -> Iterator[Subscriber]:
    """One subscriber at a time, in id order (see iter_batches)."""
    for batch in iter_batches(engine, where, batch_size):
        yield from batch
