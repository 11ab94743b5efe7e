"""Sends and their leases: one row per send, exclusive per issue, run by one process at a time.

Exclusivity rests on the database: a unique partial index allows one send of an issue in the
states `sending` or `stopped`, so of two processes creating the same send exactly one
succeeds. The process that runs a send holds its lease: its name (`host:pid`), a heartbeat and
a fencing token (`sends.lease`) that grows with every takeover; every ledger write of a run
names the token it took (LedgerStore.fence).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.dispatch.artifact import Artifact
from newsletter.dispatch.ledger.artifacts import store_artifact
from newsletter.dispatch.ledger.pauses import SendPaused, resume_in
from newsletter.dispatch.ledger.store import LedgerStore, SendBusy, SendFinished, utcnow

#: a lease whose heartbeat is older than this, held from another machine, is taken to be dead
STALE_AFTER = dt.timedelta(minutes=2)
#: how often a running send renews its lease (also while a run waits out a back-off)
HEARTBEAT_EVERY = STALE_AFTER / 8
#: PostgreSQL: a send of this many recipients or more has the ledger's statistics refreshed
#: once its rows exist (the planner's other choices, e.g. for the consent check's joins, then
#: see it); a smaller one is read in moments whatever the plan
ANALYZE_FROM = 10_000
#: recipient states in which a send is done with its recipient
SETTLED = frozenset({"accepted", "failed", "skipped", "cancelled"})


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
    skipped: int
    cancelled: int
    reach: str
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
    paused_at: dt.datetime | None = None  # the reputation guard holds it (ledger.pauses)

    @property
    def paused(self) -> bool:
        """Paused by the reputation guard and not yet resumed (`send --resume`)."""
        return self.paused_at is not None and self.state in ("sending", "stopped")

    @property
    def pending(self) -> int:
        return (self.total - self.accepted - self.failed - self.unknown - self.skipped
                - self.cancelled)

    def busy_message(self) -> str:
        """One line naming this send as the one in the way of another."""
        to = f"send #{self.id} of {self.issue} to '{self.segment}'"
        if self.paused:
            return self.paused_message()
        if self.owner and is_alive(self.owner, self.heartbeat_at):
            since = self.leased_at or self.created_at
            return (f"{to} is under way (process {self.owner}, since {since:%Y-%m-%d %H:%M:%S} "
                    "UTC); wait for it to finish")
        return (f"{to} is stopped and not yet resumed (since {self.updated_at:%Y-%m-%d %H:%M} "
                f"UTC); resume it with `newsletter send {self.issue} --segment "
                f"{self.segment.replace(' + ', ' --segment ')}` or give it up with "
                f"`newsletter send cancel {self.issue}`")

    def paused_message(self) -> str:
        """What a paused send is and how to go on from it."""
        assert self.paused_at is not None
        why = (self.last_error or "").removeprefix("paused by the reputation guard: ")
        return (f"send #{self.id} of {self.issue} to '{self.segment}' was paused by the "
                f"reputation guard at {self.paused_at:%Y-%m-%d %H:%M} UTC"
                + (f" ({why})" if why else "") + f"; look at `newsletter status {self.issue}`, "
                f"then go on with `newsletter send {self.issue} --resume` or give it up with "
                f"`newsletter send cancel {self.issue}`")

    @classmethod
    def of(cls, row: Any) -> SendRow:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


def counts_of(conn: Connection, send_id: int) -> dict[str, int]:
    """The send's recipients per state, counted."""
    return dict(conn.execute(select(send_recipients.c.state, func.count())
                             .where(send_recipients.c.send_id == send_id)
                             .group_by(send_recipients.c.state)).all())


def counters(counts: dict[str, int]) -> dict[str, int]:
    """The send row's count columns for recipient `counts`."""
    return {state: counts.get(state, 0)
            for state in ("accepted", "failed", "unknown", "skipped", "cancelled")}


class Sends:
    """Creating, leasing, releasing and giving up sends."""

    def __init__(self, store: LedgerStore):
        self.store = store

    def get(self, send_id: int) -> SendRow:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(sends).where(sends.c.id == send_id)).one()
        return SendRow.of(row)

    def of_issue(self, issue: str, segment: str | None = None) -> list[SendRow]:
        """Sends of `issue` (to `segment`), oldest first."""
        query = select(sends).where(sends.c.issue == issue)
        if segment is not None:
            query = query.where(sends.c.segment == segment)
        with self.store.engine.connect() as conn:
            return [SendRow.of(r) for r in conn.execute(query.order_by(sends.c.id))]

    def last_completed(self) -> SendRow | None:
        """The latest send, of any issue, that completed."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(sends).where(sends.c.state == "completed")
                               .order_by(sends.c.id.desc()).limit(1)).first()
        return SendRow.of(row) if row else None

    def active(self, issue: str) -> SendRow | None:
        """The send of `issue` that is under way or stopped (at most one: unique index)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(sends).where(
                sends.c.issue == issue, sends.c.state.in_(["sending", "stopped"]))).first()
        return SendRow.of(row) if row else None

    def create(self, *, issue: str, segment: str, transport: str, artifact: Artifact,
               members: Any, reach: str = "once", send_at: dt.datetime | None = None,
               batch_id: str | None = None) -> SendRow | None:
        """A new send, its lease held by this process, its recipients snapshotted from
        `members` (a WHERE clause over subscribers evaluated in the creating transaction, or a
        function making one from that transaction's connection, e.g. `SendPlan.recipients`,
        which reads the issue family's sends through it) and its artifact stored, all in one
        transaction. Returns None, with nothing written, when nobody is left.

        Raises SendBusy, naming the other send, while another send of `issue` is active: the
        unique partial index decides, however two processes interleave.
        """
        from newsletter.dispatch.ledger.recipients import snapshot

        now = utcnow()
        owner = process_owner()

        def work(conn: Connection) -> int | None:
            where = members(conn) if callable(members) else members  # before the send exists
            send_id = conn.execute(insert(sends).values(
                issue=issue, segment=segment, transport=transport,
                content_hash=artifact.content_hash, subject=artifact.subject, state="sending",
                total=0, accepted=0, failed=0, unknown=0, skipped=0, cancelled=0, reach=reach,
                batches=0, send_at=send_at, batch_id=batch_id, owner=owner, heartbeat_at=now,
                lease=1, leased_at=now, created_at=now, updated_at=now,
            ).returning(sends.c.id)).scalar_one()
            total = snapshot(conn, send_id, where)
            if total == 0:
                conn.get_transaction().rollback()
                return None
            conn.execute(update(sends).where(sends.c.id == send_id).values(total=total))
            store_artifact(conn, send_id, artifact)
            return send_id

        try:
            send_id = self.store.write(work)
        except IntegrityError:
            other = self.active(issue)
            if other is None:  # it finished in between: the caller may plan again
                raise SendBusy(f"another send of {issue} was under way; run the command "
                               "again") from None
            raise SendBusy(other.busy_message()) from None
        if send_id is None:
            return None
        self.store.hold(send_id, 1, 0)
        send = self.get(send_id)
        if not self.store.sqlite and send.total >= ANALYZE_FROM:
            self.store.analyse()
        return send

    def check_free(self, send_id: int) -> None:
        """Refuse while another live process is sending `send_id`."""
        send = self.get(send_id)
        if send.owner and send.owner != process_owner() and is_alive(send.owner,
                                                                     send.heartbeat_at):
            raise SendBusy(send.busy_message())

    def acquire(self, send_id: int, *, reopen: bool = False, resume: bool = False) -> int:
        """Take the send's lease (a new fencing token); refuse while another live process
        holds it (SendFinished when another process completed it meanwhile). `reopen`: a
        completed send goes back to `sending` (--retry-failed), which the unique index refuses
        while another send of the issue is active. A send the reputation guard paused is
        taken only with `resume` (`send --resume`), which lifts the pause in the same
        transaction (ledger.pauses.resume_in); otherwise SendPaused."""
        owner = process_owner()

        def work(conn: Connection) -> tuple[int, int]:
            query = select(sends).where(sends.c.id == send_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            send = SendRow.of(conn.execute(query).one())
            if send.owner and send.owner != owner and is_alive(send.owner, send.heartbeat_at):
                raise SendBusy(send.busy_message())
            if send.state == "completed" and not reopen:
                raise SendFinished(f"send #{send_id} was completed meanwhile; nothing to resume")
            if send.state not in ("sending", "stopped") and not reopen:
                raise SendBusy(f"send #{send_id} is {send.state}; nothing to resume")
            if send.paused and not resume:
                raise SendPaused(send.paused_message())
            now = utcnow()
            if resume:
                resume_in(conn, send_id, owner, now)
            row = conn.execute(update(sends).where(sends.c.id == send_id).values(
                owner=owner, heartbeat_at=now, leased_at=now, lease=sends.c.lease + 1,
                state="sending", finished_at=None, updated_at=now,
            ).returning(sends.c.lease, sends.c.batches)).one()
            return row.lease, row.batches

        try:
            token, batches = self.store.write(work)
        except IntegrityError:
            other = self.active(self.get(send_id).issue)
            raise SendBusy(other.busy_message() if other else
                           "another send of the issue was under way; run the command again"
                           ) from None
        self.store.hold(send_id, token, batches)
        return token

    def beat(self, send_id: int) -> None:
        """Renew the lease's heartbeat; raises LeaseLost when it is no longer ours."""
        self.store.write(lambda conn: self.store.fence(conn, send_id),
                         patience=HEARTBEAT_EVERY.total_seconds())

    def release(self, send_id: int, last_error: str | None = None) -> SendRow:
        """Give the lease back with exact counts; the send is `completed` when every
        recipient is settled (accepted, failed for good, skipped or cancelled), else
        `stopped` (resumable)."""
        now = utcnow()

        def work(conn: Connection) -> None:
            counts = counts_of(conn, send_id)
            done = set(counts) <= SETTLED
            values: dict[str, Any] = {
                "owner": None, "state": "completed" if done else "stopped",
                "last_error": None if done else last_error, "updated_at": now,
                **counters(counts)}
            if done:
                values.update(finished_at=now, paused_at=None)
            self.store.fence(conn, send_id, **values)

        self.store.write(work)
        self.store.let_go(send_id)
        return self.get(send_id)

    def cancel(self, send_id: int, reason: str) -> None:
        """Give a send up for good (`send cancel`): it takes the lease from any holder, so a
        process still running it stops at its next write."""
        now = utcnow()
        self.store.write(lambda conn: conn.execute(update(sends).where(
            sends.c.id == send_id).values(
            state="cancelled", last_error=reason, owner=None, lease=sends.c.lease + 1,
            updated_at=now, finished_at=now)))
        self.store.let_go(send_id)


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
