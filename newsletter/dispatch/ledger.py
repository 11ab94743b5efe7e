"""The send ledger: who a send is for and what became of each message, in the database.

Crash safety rests on three rules:

1. the recipient list is snapshotted (INSERT ... SELECT) in the transaction that creates the
   send, so a resumed send goes to exactly the people the first run meant;
2. before a batch is handed over, its rows are committed as `unknown` (in flight); after the
   provider answers they become `accepted`, `failed` or `pending` again. A crash in between
   leaves them `unknown`: never silently resent, listed for the operator;
3. rows are read in id order, a batch at a time, so memory does not grow with the segment.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, func, insert, literal, select, update

from newsletter.core.errors import FailedError
from newsletter.core.personalise import Recipient
from newsletter.db.engine import write_connection
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import subscribers
from newsletter.providers.mailing import Item

#: a lease older than this, held from another machine, is taken to be dead
STALE_AFTER = dt.timedelta(minutes=2)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class SendRow:
    """One send, as the ledger has it."""

    id: int
    issue: str
    segment: str
    transport: str
    content_hash: str
    subject: str
    state: str
    total: int
    accepted: int
    failed: int
    unknown: int
    batches: int
    send_at: dt.datetime | None
    batch_id: str | None
    owner: str | None
    heartbeat_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def pending(self) -> int:
        return self.total - self.accepted - self.failed - self.unknown

    @classmethod
    def of(cls, row: Any) -> SendRow:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Batch:
    """Rows read for one hand-over, and how many of them had failed before."""

    items: list[Item]
    failed: int = 0


@dataclass(frozen=True)
class RecipientRow:
    id: int
    email: str
    name: str
    state: str
    attempts: int
    provider_id: str | None
    last_error: str | None
    batch: int | None


class Ledger:
    """Ledger operations over one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # -- sends ----------------------------------------------------------------------------
    def get(self, send_id: int) -> SendRow:
        with self.engine.connect() as conn:
            row = conn.execute(select(sends).where(sends.c.id == send_id)).one()
        return SendRow.of(row)

    def sends_for(self, issue: str, segment: str | None = None) -> list[SendRow]:
        """Sends of `issue` (to `segment`), oldest first."""
        query = select(sends).where(sends.c.issue == issue)
        if segment is not None:
            query = query.where(sends.c.segment == segment)
        with self.engine.connect() as conn:
            return [SendRow.of(r) for r in conn.execute(query.order_by(sends.c.id))]

    def create(self, *, issue: str, segment: str, transport: str, content_hash: str,
               subject: str, members: Any, send_at: dt.datetime | None = None,
               batch_id: str | None = None) -> SendRow | None:
        """A new send with its recipients snapshotted from `members` (a WHERE clause over
        subscribers). Returns None, with nothing written, when the segment is empty."""
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin() as tx:
            send_id = conn.execute(insert(sends).values(
                issue=issue, segment=segment, transport=transport, content_hash=content_hash,
                subject=subject, state="sending", total=0, accepted=0, failed=0, unknown=0,
                batches=0, send_at=send_at, batch_id=batch_id, created_at=now, updated_at=now,
            ).returning(sends.c.id)).scalar_one()
            snapshot = select(
                literal(send_id, sends.c.id.type), subscribers.c.id, subscribers.c.email,
                subscribers.c.name, subscribers.c.attributes, literal("pending"), literal(0),
            ).where(members).order_by(subscribers.c.id)
            total = conn.execute(insert(send_recipients).from_select(
                ["send_id", "subscriber_id", "email", "name", "attributes", "state", "attempts"],
                snapshot,
            )).rowcount
            if total is None or total < 0:
                total = conn.execute(select(func.count()).where(
                    send_recipients.c.send_id == send_id)).scalar_one()
            if total == 0:
                tx.rollback()
                return None
            conn.execute(update(sends).where(sends.c.id == send_id).values(total=total))
        return self.get(send_id)

    def check_free(self, send_id: int) -> None:
        """Refuse while another live process is sending `send_id`."""
        send = self.get(send_id)
        _refuse_if_held(send_id, send.owner, send.heartbeat_at, process_owner())

    def acquire(self, send_id: int, owner: str | None = None) -> None:
        """Take the send's lease; refuse while another live process holds it."""
        owner = owner or process_owner()
        with write_connection(self.engine) as conn, conn.begin():
            query = select(sends.c.owner, sends.c.heartbeat_at).where(sends.c.id == send_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            holder, beat = conn.execute(query).one()
            _refuse_if_held(send_id, holder, beat, owner)
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                owner=owner, heartbeat_at=utcnow()))

    def release(self, send_id: int, last_error: str | None = None) -> SendRow:
        """Give the lease back with exact counts; the send is `completed` only when every
        recipient is `accepted`, else `stopped` (resumable)."""
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            counts = dict(conn.execute(
                select(send_recipients.c.state, func.count())
                .where(send_recipients.c.send_id == send_id)
                .group_by(send_recipients.c.state)).all())
            done = set(counts) <= {"accepted"}
            state = "completed" if done else "stopped"
            values: dict[str, Any] = {
                "owner": None, "state": state, "last_error": None if done else last_error,
                "updated_at": now, "accepted": counts.get("accepted", 0),
                "failed": counts.get("failed", 0), "unknown": counts.get("unknown", 0),
            }
            if done:
                values["finished_at"] = now
            conn.execute(update(sends).where(sends.c.id == send_id).values(**values))
        return self.get(send_id)

    def set_state(self, send_id: int, state: str, last_error: str | None = None) -> None:
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                state=state, last_error=last_error, updated_at=utcnow(),
                finished_at=utcnow() if state in ("completed", "cancelled") else None))

    # -- recipients -----------------------------------------------------------------------
    def stream(self, send_id: int, states: Sequence[str], size: int, *,
               attributes: bool = True) -> Iterator[Batch]:
        """Rows of the send in `states`, in id order, `size` at a time (keyset pagination).

        Without `attributes` the JSON column is not read (and recipients get none)."""
        after = 0
        columns = (send_recipients.c.id, send_recipients.c.email, send_recipients.c.name,
                   send_recipients.c.attributes if attributes else literal(None).label("a"),
                   send_recipients.c.state)
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*columns)
                    .where(send_recipients.c.send_id == send_id,
                           send_recipients.c.id > after,
                           send_recipients.c.state.in_(list(states)))
                    .order_by(send_recipients.c.id).limit(size)).all()
            if not rows:
                return
            after = rows[-1].id
            yield Batch([Item(r.id, Recipient(r.email, r.name or "", r[3] or {}))
                         for r in rows], sum(1 for r in rows if r.state == "failed"))

    def count(self, send_id: int, states: Sequence[str]) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                send_recipients.c.send_id == send_id,
                send_recipients.c.state.in_(list(states)))).scalar_one()

    def mark_in_flight(self, send_id: int, keys: Sequence[int], was_failed: int, *,
                       whole: bool = False) -> int:
        """Commit `keys` as `unknown` before they are handed over; returns the batch number.

        `whole`: the keys are a batch just read by `stream()`, i.e. every pending or failed row
        of the send between the first and the last key; one range update then marks them.
        """
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            batch = conn.execute(update(sends).where(sends.c.id == send_id).values(
                batches=sends.c.batches + 1, unknown=sends.c.unknown + len(keys),
                failed=sends.c.failed - was_failed, heartbeat_at=now, updated_at=now,
            ).returning(sends.c.batches)).scalar_one()
            values = {"state": "unknown", "batch": batch, "updated_at": now,
                      "attempts": send_recipients.c.attempts + 1}
            if whole:
                marked = conn.execute(update(send_recipients).where(
                    send_recipients.c.send_id == send_id,
                    send_recipients.c.id.between(keys[0], keys[-1]),
                    send_recipients.c.state.in_(["pending", "failed"])).values(**values)).rowcount
                if marked != len(keys):
                    raise RuntimeError(f"send #{send_id}: the ledger changed under the send "
                                       f"({marked} rows marked for a batch of {len(keys)})")
            else:
                conn.execute(update(send_recipients).where(
                    send_recipients.c.id.in_(bindparam("keys", expanding=True))).values(**values),
                    {"keys": list(keys)})
        return batch

    def record(self, send_id: int, results: Sequence[tuple[int, str, str | None, str | None]],
               batch: int | None = None) -> None:
        """Store outcomes (key, state, provider_id, error) of rows marked in flight.

        `retry` puts a row back to `pending`; counts move in the same transaction. With the
        `batch` number the rows were marked with, the largest group of identical outcomes is
        stored with one range update instead of a list of a thousand ids.
        """
        groups: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(list)
        for key, state, provider_id, error in results:
            stored = "pending" if state == "retry" else state
            groups[(stored, provider_id, error)].append(key)
        delta: dict[str, int] = defaultdict(int)
        for (state, _, _), keys in groups.items():
            delta[state] += len(keys)
        ranked = sorted(groups.items(), key=lambda g: len(g[1]), reverse=True)
        bulk = None
        if batch is not None and not any(g[0][0] == "unknown" for g in ranked[1:]):
            bulk = ranked.pop(0)  # updated last, by range: the others have left `unknown`
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            if len(ranked) <= 4:
                for (state, provider_id, error), keys in ranked:
                    conn.execute(update(send_recipients).where(
                        send_recipients.c.id.in_(bindparam("keys", expanding=True)))
                        .values(**_outcome(state, provider_id, error, now)), {"keys": keys})
            else:  # outcomes of their own (per-message provider ids): one executemany
                conn.execute(update(send_recipients).where(
                    send_recipients.c.id == bindparam("key")).values(
                    state=bindparam("new_state"), provider_id=bindparam("pid"),
                    last_error=bindparam("error"), updated_at=now),
                    [{"key": key, "new_state": state, "pid": pid and pid[:255], "error": error}
                     for (state, pid, error), keys in ranked for key in keys])
            if bulk is not None:
                (state, provider_id, error), keys = bulk
                done = conn.execute(update(send_recipients).where(
                    send_recipients.c.send_id == send_id,
                    send_recipients.c.id.between(min(keys), max(keys)),
                    send_recipients.c.batch == batch, send_recipients.c.state == "unknown",
                ).values(**_outcome(state, provider_id, error, now))).rowcount
                if done != len(keys):
                    raise RuntimeError(f"send #{send_id}: batch {batch} has {done} rows in "
                                       f"flight, expected {len(keys)}")
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                accepted=sends.c.accepted + delta["accepted"],
                failed=sends.c.failed + delta["failed"],
                unknown=sends.c.unknown - sum(delta.values()) + delta["unknown"],
                updated_at=now))

    def settle_unknown(self, send_id: int, state: str,
                       batches: Sequence[int] | None = None) -> int:
        """The operator's call on `unknown` rows (all, or those of `batches`): `pending`
        (resend) or `accepted` (after checking the provider's activity log)."""
        assert state in ("pending", "accepted")
        with write_connection(self.engine) as conn, conn.begin():
            values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
            if state == "accepted":
                values["last_error"] = "accepted by the operator after an unknown outcome"
            query = update(send_recipients).where(send_recipients.c.send_id == send_id,
                                                  send_recipients.c.state == "unknown")
            if batches is not None:
                query = query.where(send_recipients.c.batch.in_(list(batches)))
            changed = conn.execute(query.values(**values)).rowcount
            extra = {"accepted": sends.c.accepted + changed} if state == "accepted" else {}
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                unknown=sends.c.unknown - changed, **extra))
        return changed

    def count_unknown(self, send_id: int, batches: Sequence[int]) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                send_recipients.c.send_id == send_id, send_recipients.c.state == "unknown",
                send_recipients.c.batch.in_(list(batches)))).scalar_one()

    def listing(self, send_id: int, state: str, limit: int = 50) -> list[RecipientRow]:
        """Up to `limit` rows in `state`, for status reports."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(send_recipients.c.id, send_recipients.c.email, send_recipients.c.name,
                       send_recipients.c.state, send_recipients.c.attempts,
                       send_recipients.c.provider_id, send_recipients.c.last_error,
                       send_recipients.c.batch)
                .where(send_recipients.c.send_id == send_id, send_recipients.c.state == state)
                .order_by(send_recipients.c.id).limit(limit)).all()
        return [RecipientRow(*r) for r in rows]


def _outcome(state: str, provider_id: str | None, error: str | None, now: dt.datetime
             ) -> dict[str, Any]:
    values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": error}
    if provider_id is not None:
        values["provider_id"] = provider_id[:255]
    return values


def _refuse_if_held(send_id: int, holder: str | None, beat: dt.datetime | None,
                    owner: str) -> None:
    """Raise FailedError when a live process other than `owner` holds the send's lease."""
    if holder and holder != owner and is_alive(holder, beat):
        raise FailedError(f"send #{send_id} is being sent right now by process "
                          f"{holder}; wait for it or stop it first")


def is_alive(owner: str, heartbeat: dt.datetime | None) -> bool:
    """Is the process named `owner` ("host:pid") still running?"""
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _zombie(int(pid))
    return heartbeat is not None and utcnow() - heartbeat < STALE_AFTER


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
