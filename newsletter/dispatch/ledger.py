"""The send ledger: who a send is for and what became of each message, in the database.

Crash safety rests on three rules:

1. the recipient list is snapshotted (INSERT ... SELECT) in the transaction that creates the
   send, so a resumed send goes to exactly the people the first run meant;
2. before a batch is handed over, its rows are committed as `unknown` (in flight); after the
   provider answers they become `accepted`, `failed` or `pending` again. A crash in between
   leaves them `unknown`: never silently resent, listed for the operator;
3. rows are read in id order, a batch at a time, so memory does not grow with the segment.

Exclusivity rests on the database: a unique partial index allows one send of an issue in the
states `sending` or `stopped`, and a send's lease is a fencing token (`sends.lease`). Every
ledger write of a run names the token it took; a write whose token is no longer the send's
(another process took the lease over) changes nothing and raises `LeaseLost`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.core.errors import FailedError
from newsletter.core.personalise import Recipient
from newsletter.db.engine import write_connection
from newsletter.db.ledger_tables import send_batches, send_recipients, sends
from newsletter.db.tables import subscribers
from newsletter.providers.mailing import Item

#: a lease whose heartbeat is older than this, held from another machine, is taken to be dead
STALE_AFTER = dt.timedelta(minutes=2)
#: how often a running send renews its lease (also while the engine waits out a back-off)
HEARTBEAT_EVERY = STALE_AFTER / 8


class LeaseLost(FailedError):
    """Another process took this send's lease over: this process must not write to it."""


class SendBusy(FailedError):
    """Another send of the same issue is under way or stopped and not yet resumed."""


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
    lease: int
    leased_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def pending(self) -> int:
        return self.total - self.accepted - self.failed - self.unknown

    def busy_message(self) -> str:
        """One line naming this send as the one in the way of another."""
        to = f"send #{self.id} of {self.issue} to '{self.segment}'"
        if self.owner and is_alive(self.owner, self.heartbeat_at):
            since = self.leased_at or self.created_at
            return (f"{to} is under way (process {self.owner}, since {since:%Y-%m-%d %H:%M:%S} "
                    "UTC); wait for it to finish")
        return (f"{to} is stopped and not yet resumed (since {self.updated_at:%Y-%m-%d %H:%M} "
                f"UTC); resume it with `newsletter send {self.issue} --segment "
                f"{self.segment.replace(' + ', ' --segment ')}` or give it up with "
                f"`newsletter send cancel {self.issue}`")

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


@dataclass(frozen=True)
class RunBatch:
    """A SendGrid batch id one run of a scheduled send used."""

    id: int
    batch_id: str
    send_at: dt.datetime
    first_batch: int
    state: str
    created_at: dt.datetime


class Ledger:
    """Ledger operations over one engine (SQLite or PostgreSQL).

    The lease tokens this process holds are kept per send id; fenced writes use them.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.leases: dict[int, int] = {}

    def _fence(self, conn: Connection, send_id: int, **values: Any) -> None:
        """First statement of every write of a run: renew the heartbeat, provided this
        process still holds the lease (on PostgreSQL this also locks the send's row)."""
        token = self.leases.get(send_id)
        changed = conn.execute(update(sends).where(
            sends.c.id == send_id, sends.c.lease == token, sends.c.owner.is_not(None)
        ).values(heartbeat_at=utcnow(), **values)).rowcount if token is not None else 0
        if changed != 1:
            self.leases.pop(send_id, None)
            raise LeaseLost(f"send #{send_id}: another process took the send over; this one "
                            "stops without writing")

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

    def last_completed(self) -> SendRow | None:
        """The latest send, of any issue, that completed."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sends).where(sends.c.state == "completed")
                               .order_by(sends.c.id.desc()).limit(1)).first()
        return SendRow.of(row) if row else None

    def active(self, issue: str) -> SendRow | None:
        """The send of `issue` that is under way or stopped (at most one: unique index)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sends).where(
                sends.c.issue == issue, sends.c.state.in_(["sending", "stopped"]))).first()
        return SendRow.of(row) if row else None

    def received(self, issue: str) -> Any:
        """A WHERE clause over subscribers: those an earlier send of `issue` settled, i.e.
        accepted, or failed for good (a cancelled send's failures are cancellations: those
        people did not get the issue and are not counted)."""
        earlier = select(sends.c.id).where(sends.c.issue == issue)
        settled = (send_recipients.c.state == "accepted") | (
            (send_recipients.c.state == "failed")
            & send_recipients.c.send_id.in_(earlier.where(sends.c.state != "cancelled")))
        return subscribers.c.id.in_(
            select(send_recipients.c.subscriber_id).where(
                send_recipients.c.send_id.in_(earlier), settled,
                send_recipients.c.subscriber_id.is_not(None)))

    def create(self, *, issue: str, segment: str, transport: str, content_hash: str,
               subject: str, members: Any, send_at: dt.datetime | None = None,
               batch_id: str | None = None) -> SendRow | None:
        """A new send, its lease held by this process, with its recipients snapshotted from
        `members` (a WHERE clause over subscribers, evaluated in the creating transaction,
        e.g. one that leaves out `received(issue)`). Returns None, with nothing written, when
        nobody is left.

        Raises SendBusy, naming the other send, while another send of `issue` is active: the
        unique partial index decides, however two processes interleave.
        """
        now = utcnow()
        owner = process_owner()
        try:
            with write_connection(self.engine) as conn, conn.begin() as tx:
                send_id = conn.execute(insert(sends).values(
                    issue=issue, segment=segment, transport=transport,
                    content_hash=content_hash, subject=subject, state="sending", total=0,
                    accepted=0, failed=0, unknown=0, batches=0, send_at=send_at,
                    batch_id=batch_id, owner=owner, heartbeat_at=now, lease=1, leased_at=now,
                    created_at=now, updated_at=now,
                ).returning(sends.c.id)).scalar_one()
                total = self._snapshot(conn, send_id, members)
                if total == 0:
                    tx.rollback()
                    return None
                conn.execute(update(sends).where(sends.c.id == send_id).values(total=total))
        except IntegrityError:
            other = self.active(issue)
            if other is None:  # it finished in between: the caller may plan again
                raise SendBusy(f"another send of {issue} was under way; run the command "
                               "again") from None
            raise SendBusy(other.busy_message()) from None
        self.leases[send_id] = 1
        return self.get(send_id)

    def _snapshot(self, conn: Connection, send_id: int, members: Any) -> int:
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
        return total

    def check_free(self, send_id: int) -> None:
        """Refuse while another live process is sending `send_id`."""
        send = self.get(send_id)
        if send.owner and send.owner != process_owner() and is_alive(send.owner,
                                                                     send.heartbeat_at):
            raise SendBusy(send.busy_message())

    def acquire(self, send_id: int, *, reopen: bool = False) -> int:
        """Take the send's lease (a new fencing token); refuse while another live process
        holds it. `reopen`: a completed send goes back to `sending` (--retry-failed), which
        the unique index refuses while another send of the issue is active."""
        owner = process_owner()
        try:
            with write_connection(self.engine) as conn, conn.begin():
                query = select(sends).where(sends.c.id == send_id)
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                send = SendRow.of(conn.execute(query).one())
                if send.owner and send.owner != owner and is_alive(send.owner,
                                                                   send.heartbeat_at):
                    raise SendBusy(send.busy_message())
                if send.state not in ("sending", "stopped") and not reopen:
                    raise SendBusy(f"send #{send_id} is {send.state}; nothing to resume")
                now = utcnow()
                token = conn.execute(update(sends).where(sends.c.id == send_id).values(
                    owner=owner, heartbeat_at=now, leased_at=now, lease=sends.c.lease + 1,
                    state="sending", finished_at=None, updated_at=now,
                ).returning(sends.c.lease)).scalar_one()
        except IntegrityError:
            other = self.active(self.get(send_id).issue)
            raise SendBusy(other.busy_message() if other else
                           "another send of the issue was under way; run the command again"
                           ) from None
        self.leases[send_id] = token
        return token

    def beat(self, send_id: int) -> None:
        """Renew the lease's heartbeat; raises LeaseLost when it is no longer ours."""
        with write_connection(self.engine) as conn, conn.begin():
            self._fence(conn, send_id)

    def release(self, send_id: int, last_error: str | None = None) -> SendRow:
        """Give the lease back with exact counts; the send is `completed` when every
        recipient is `accepted` or permanently `failed`, else `stopped` (resumable)."""
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            self._fence(conn, send_id)
            counts = dict(conn.execute(
                select(send_recipients.c.state, func.count())
                .where(send_recipients.c.send_id == send_id)
                .group_by(send_recipients.c.state)).all())
            done = set(counts) <= {"accepted", "failed"}
            state = "completed" if done else "stopped"
            values: dict[str, Any] = {
                "owner": None, "state": state, "last_error": None if done else last_error,
                "updated_at": now, "accepted": counts.get("accepted", 0),
                "failed": counts.get("failed", 0), "unknown": counts.get("unknown", 0),
            }
            if done:
                values["finished_at"] = now
            conn.execute(update(sends).where(sends.c.id == send_id).values(**values))
        self.leases.pop(send_id, None)
        return self.get(send_id)

    def cancel(self, send_id: int, reason: str) -> None:
        """Give a send up for good (`send cancel`): it takes the lease from any holder, so a
        process still running it stops at its next write; rows handed over to batches that
        were cancelled at the provider are recorded by the caller first."""
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                state="cancelled", last_error=reason, owner=None, lease=sends.c.lease + 1,
                updated_at=now, finished_at=now))
        self.leases.pop(send_id, None)

    def requeue_failed(self, send_id: int) -> int:
        """--retry-failed: permanently failed rows become pending again (fenced)."""
        with write_connection(self.engine) as conn, conn.begin():
            self._fence(conn, send_id)
            changed = conn.execute(update(send_recipients).where(
                send_recipients.c.send_id == send_id, send_recipients.c.state == "failed",
            ).values(state="pending", updated_at=utcnow())).rowcount
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                failed=sends.c.failed - changed))
        return changed

    # -- scheduled (undo-window) batches ---------------------------------------------------
    def open_batch(self, send_id: int, batch_id: str, send_at: dt.datetime) -> RunBatch:
        """Record the SendGrid batch id this run uses from its next ledger batch on."""
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            self._fence(conn, send_id, send_at=send_at, batch_id=batch_id)
            first = conn.execute(select(sends.c.batches).where(sends.c.id == send_id)
                                 ).scalar_one() + 1
            row_id = conn.execute(insert(send_batches).values(
                send_id=send_id, batch_id=batch_id, send_at=send_at, first_batch=first,
                state="open", created_at=now).returning(send_batches.c.id)).scalar_one()
        return RunBatch(row_id, batch_id, send_at, first, "open", now)

    def run_batches(self, send_id: int) -> list[RunBatch]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(send_batches).where(send_batches.c.send_id == send_id)
                                .order_by(send_batches.c.first_batch)).all()
        return [RunBatch(r.id, r.batch_id, r.send_at, r.first_batch, r.state, r.created_at)
                for r in rows]

    def _batch_range(self, send_id: int, run: RunBatch) -> Any:
        later = [b.first_batch for b in self.run_batches(send_id)
                 if b.first_batch > run.first_batch]
        condition = send_recipients.c.batch >= run.first_batch
        if later:
            condition = condition & (send_recipients.c.batch < min(later))
        return condition

    def unknown_in(self, send_id: int, run: RunBatch) -> int:
        """Rows of unknown fate handed over under `run`'s batch id."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                send_recipients.c.send_id == send_id, send_recipients.c.state == "unknown",
                self._batch_range(send_id, run))).scalar_one()

    def cancelled_batch(self, send_id: int, run: RunBatch, *, requeue: bool,
                        reason: str = "") -> int:
        """SendGrid cancelled `run`'s batch id: nothing handed over under it is delivered.
        Its accepted and unknown rows go back to `pending` (`requeue`, a resume) or become
        `failed` with `reason` (`send cancel`). Returns how many rows moved."""
        now = utcnow()
        where = (send_recipients.c.send_id == send_id,
                 send_recipients.c.state.in_(["accepted", "unknown"]),
                 self._batch_range(send_id, run))
        with write_connection(self.engine) as conn, conn.begin():
            if requeue:
                self._fence(conn, send_id)
            conn.execute(update(send_batches).where(send_batches.c.id == run.id)
                         .values(state="cancelled"))
            values: dict[str, Any] = ({"state": "pending", "provider_id": None,
                                       "last_error": None} if requeue else
                                      {"state": "failed", "last_error": reason})
            changed = conn.execute(update(send_recipients).where(*where)
                                   .values(updated_at=now, **values)).rowcount
            counts = dict(conn.execute(
                select(send_recipients.c.state, func.count())
                .where(send_recipients.c.send_id == send_id)
                .group_by(send_recipients.c.state)).all())
            conn.execute(update(sends).where(sends.c.id == send_id).values(
                accepted=counts.get("accepted", 0), failed=counts.get("failed", 0),
                unknown=counts.get("unknown", 0), updated_at=now))
        return changed

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
            after = rows[-1][0]
            yield Batch([Item(key, Recipient(email, name or "", attributes or {}))
                         for key, email, name, attributes, _ in rows],
                        sum(1 for r in rows if r[4] == "failed"))

    def count(self, send_id: int, states: Sequence[str]) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                send_recipients.c.send_id == send_id,
                send_recipients.c.state.in_(list(states)))).scalar_one()

    def mark_in_flight(self, send_id: int, keys: Sequence[int], was_failed: int, *,
                       whole: bool = False) -> int:
        """Commit `keys` as `unknown` before they are handed over; returns the batch number.

        `whole`: the keys are a batch just read by `stream()`, i.e. every pending row of the
        send between the first and the last key; one range update then marks them.
        """
        now = utcnow()
        with write_connection(self.engine) as conn, conn.begin():
            batch = conn.execute(update(sends).where(
                sends.c.id == send_id, sends.c.lease == self.leases.get(send_id, -1),
                sends.c.owner.is_not(None)).values(
                batches=sends.c.batches + 1, unknown=sends.c.unknown + len(keys),
                failed=sends.c.failed - was_failed, heartbeat_at=now, updated_at=now,
            ).returning(sends.c.batches)).scalar_one_or_none()
            if batch is None:
                self.leases.pop(send_id, None)
                raise LeaseLost(f"send #{send_id}: another process took the send over; this "
                                "one stops without handing anything over")
            values = {"state": "unknown", "batch": batch, "updated_at": now,
                      "attempts": send_recipients.c.attempts + 1}
            if whole:
                marked = conn.execute(update(send_recipients).where(
                    send_recipients.c.send_id == send_id,
                    send_recipients.c.id.between(keys[0], keys[-1]),
                    send_recipients.c.state == "pending").values(**values)).rowcount
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

        `retry` and `deferred` put a row back to `pending`; counts move in the same
        transaction. With the `batch` number the rows were marked with, the largest group of
        identical outcomes is stored with one range update instead of a list of ids.
        """
        groups: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(list)
        for key, state, provider_id, error in results:
            stored = "pending" if state in ("retry", "deferred") else state
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
            self._fence(conn, send_id)
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
            self._fence(conn, send_id)
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
