"""A send's recipient rows: the snapshot, reading them in batches, and recording what became of
each message.

Crash safety rests on three rules:

1. the recipient list is snapshotted (INSERT ... SELECT) in the transaction that creates the
   send, so a resumed send goes to exactly the people the first run meant;
2. right before a batch is handed over, whoever may no longer get it is recorded `skipped`
   (ledger.consent) and the others are committed as `unknown` (in flight), in one transaction;
   after the provider answers they become `accepted`, `failed` or `pending` again. A crash in
   between leaves them `unknown`: never silently resent, listed for the operator. A transport
   that reports each message's outcome as it happens (SMTP) has one message in flight at a
   time: recording one outcome commits the next message as in flight;
3. rows are read in id order, a batch at a time, so memory does not grow with the segment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, literal, select, update

from newsletter.core.personalise import Recipient
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import subscribers
from newsletter.dispatch.ledger.consent import ConsentCheck
from newsletter.dispatch.ledger.store import LedgerStore, at_least, utcnow
from newsletter.providers.mailing import Item

#: an outcome to store: (row id, state, provider id, error); `retry` and `deferred` store
#: `pending`
Result = tuple[int, str, str | None, str | None]


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
class HandOver:
    """One batch at its hand-over: its number, the items to hand over (in order), those
    dropped (key -> why) and those committed as in flight so far."""

    batch: int
    items: list[Item]
    skipped: dict[int, str] = field(default_factory=dict)
    marked: int = 0


def snapshot(conn: Connection, send_id: int, members: Any) -> int:
    """Copy the subscribers matching `members` into the send's rows, `pending`."""
    query = select(
        literal(send_id, sends.c.id.type), subscribers.c.id, subscribers.c.email,
        subscribers.c.name, subscribers.c.attributes, literal("pending"), literal(0),
    ).where(members).order_by(subscribers.c.id)
    # SQLAlchemy keeps an INSERT's row count only when asked to (on PostgreSQL it is -1
    # otherwise, and counting the rows again took 0.29 s at 1M)
    total = conn.execute(insert(send_recipients).from_select(
        ["send_id", "subscriber_id", "email", "name", "attributes", "state", "attempts"], query,
    ).execution_options(preserve_rowcount=True)).rowcount
    if total is None or total < 0:  # a driver that does not say
        total = conn.execute(select(func.count()).where(
            send_recipients.c.send_id == send_id)).scalar_one()
    return total


def _outcome(state: str, provider_id: str | None, error: str | None, now: Any
             ) -> dict[str, Any]:
    values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": error}
    if provider_id is not None:
        values["provider_id"] = provider_id[:255]
    return values


class Recipients:
    """The recipient rows of sends."""

    def __init__(self, store: LedgerStore):
        self.store = store

    def stream(self, send_id: int, states: Sequence[str], size: int, *,
               attributes: bool = True) -> Iterator[list[Item]]:
        """Rows of the send in `states`, in id order, `size` at a time (keyset pagination).

        Without `attributes` the JSON column is not read (and recipients get none)."""
        after = 0
        columns = (send_recipients.c.id, send_recipients.c.email, send_recipients.c.name,
                   send_recipients.c.attributes if attributes else literal(None).label("a"))
        while True:
            with self.store.reads.connect() as conn:
                rows = conn.execute(
                    select(*columns)
                    .where(send_recipients.c.send_id == send_id,
                           send_recipients.c.id > after,
                           send_recipients.c.state.in_(list(states)))
                    .order_by(send_recipients.c.id).limit(size)).all()
            if not rows:
                return
            after = rows[-1][0]
            yield [Item(key, Recipient(email, name or "", attrs or {}))
                   for key, email, name, attrs in rows]

    def count(self, send_id: int, states: Sequence[str]) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                send_recipients.c.send_id == send_id,
                send_recipients.c.state.in_(list(states)))).scalar_one()

    def hand_over(self, send_id: int, items: Sequence[Item], *, check: ConsentCheck | None,
                  whole: bool = False, first_only: bool = False) -> HandOver:
        """Right before `items` go to the transport: ask the consent check (one query), then
        record `skipped` (with why) those it drops and commit the others as in flight under a
        new batch number, in one transaction; `first_only`: only the first of them (a
        transport that reports each outcome as it happens: recording it commits the next, see
        `record`).

        `whole`: the items are every pending row of the send between the first and the last
        key (a batch just read by `stream()`); one range update then marks them.
        """
        dropped: dict[int, str] = {}
        if check is not None:  # read beside the write lock, not under it
            with self.store.reads.connect() as conn:
                dropped = check.withdrawn(conn, items)

        batch = self.store.next_batch(send_id)

        def work(conn: Connection) -> HandOver:
            now = utcnow()
            if dropped:
                conn.execute(update(send_recipients).where(
                    send_recipients.c.id == bindparam("key")).values(
                    state="skipped", last_error=bindparam("why"), updated_at=now),
                    [{"key": key, "why": why} for key, why in dropped.items()])
            go = [item for item in items if item.key not in dropped]
            marked = go[:1] if first_only else go
            whole_range = whole and not first_only and bool(go)
            done = self._mark(conn, send_id, marked, batch, now, whole=whole_range)
            self.store.fence(conn, send_id, batches=at_least(batch), updated_at=now,
                             unknown=sends.c.unknown + len(marked),
                             skipped=sends.c.skipped + len(dropped))
            if whole_range and done != len(marked):
                raise RuntimeError(f"send #{send_id}: the ledger changed under the send "
                                   f"({done} rows marked for a batch of {len(marked)})")
            return HandOver(batch, go, dropped, len(marked))

        return self.store.write(work)

    @staticmethod
    def _mark(conn: Connection, send_id: int, items: Sequence[Item], batch: int, now: Any, *,
              whole: bool = False) -> int:
        """Commit `items` as in flight in `batch`; `whole`: by one range update of the pending
        rows between the first and the last. Returns how many rows it marked."""
        if not items:
            return 0
        values = {"state": "unknown", "batch": batch, "updated_at": now,
                  "attempts": send_recipients.c.attempts + 1}
        if whole:
            return conn.execute(update(send_recipients).where(
                send_recipients.c.send_id == send_id,
                send_recipients.c.id.between(items[0].key, items[-1].key),
                send_recipients.c.state == "pending").values(**values)).rowcount
        return conn.execute(update(send_recipients).where(
            send_recipients.c.id.in_(bindparam("keys", expanding=True))).values(**values),
            {"keys": [item.key for item in items]}).rowcount

    def record(self, send_id: int, results: Sequence[Result], batch: int | None = None, *,
               then: Item | None = None) -> None:
        """Store outcomes of rows marked in flight; `then`: commit this item as in flight in
        the same transaction (the next message of a transport that reports each outcome).

        `retry` and `deferred` put a row back to `pending`; counts move in the same
        transaction. Outcomes alone are committed without waiting for the disk on PostgreSQL
        (LedgerStore.write's `durable`): lost in a server crash, their rows stay `unknown`.
        With `then` the commit is a hand-over and waits. With the `batch` number the rows
        were marked with, the largest group of identical outcomes is stored with one range
        update instead of a list of ids.
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

        def work(conn: Connection) -> None:
            now = utcnow()
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
            done = expected = 0
            if bulk is not None:
                (state, provider_id, error), keys = bulk
                expected = len(keys)
                done = conn.execute(update(send_recipients).where(
                    send_recipients.c.send_id == send_id,
                    send_recipients.c.id.between(min(keys), max(keys)),
                    send_recipients.c.batch == batch, send_recipients.c.state == "unknown",
                ).values(**_outcome(state, provider_id, error, now))).rowcount
            marked = self._mark(conn, send_id, [then], batch or 0, now) if then else 0
            self.store.fence(
                conn, send_id, accepted=sends.c.accepted + delta["accepted"],
                failed=sends.c.failed + delta["failed"],
                unknown=sends.c.unknown - sum(delta.values()) + delta["unknown"] + marked,
                updated_at=now)
            if done != expected:
                raise RuntimeError(f"send #{send_id}: batch {batch} has {done} rows in "
                                   f"flight, expected {expected}")

        self.store.write(work, durable=then is not None)

    def settle_unknown(self, send_id: int, state: str, *, batches: Sequence[int] | None = None,
                       emails: Sequence[str] | None = None) -> int:
        """The operator's call on `unknown` rows (all, those of `batches`, or those of the
        addresses `emails`): `pending` (resend) or `accepted` (after checking the provider's
        log)."""
        assert state in ("pending", "accepted")

        def work(conn: Connection) -> int:
            values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
            if state == "accepted":
                values["last_error"] = "accepted by the operator after an unknown outcome"
            query = update(send_recipients).where(send_recipients.c.send_id == send_id,
                                                  send_recipients.c.state == "unknown")
            if batches is not None:
                query = query.where(send_recipients.c.batch.in_(list(batches)))
            if emails is not None:
                query = query.where(func.lower(send_recipients.c.email).in_(
                    [e.strip().lower() for e in emails]))
            changed = conn.execute(query.values(**values)).rowcount
            extra = {"accepted": sends.c.accepted + changed} if state == "accepted" else {}
            self.store.fence(conn, send_id, unknown=sends.c.unknown - changed, **extra)
            return changed

        return self.store.write(work)

    def count_unknown(self, send_id: int, *, batches: Sequence[int] = (),
                      emails: Sequence[str] = ()) -> int:
        """Unknown rows of the send in `batches` or of the addresses `emails`."""
        if not batches and not emails:
            return 0
        r = send_recipients.c
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                r.send_id == send_id, r.state == "unknown",
                r.batch.in_(list(batches)) | func.lower(r.email).in_(
                    [e.strip().lower() for e in emails]))).scalar_one()

    def requeue_failed(self, send_id: int) -> int:
        """--retry-failed: permanently failed rows become pending again (fenced)."""
        def work(conn: Connection) -> int:
            changed = conn.execute(update(send_recipients).where(
                send_recipients.c.send_id == send_id, send_recipients.c.state == "failed",
            ).values(state="pending", updated_at=utcnow())).rowcount
            self.store.fence(conn, send_id, failed=sends.c.failed - changed)
            return changed

        return self.store.write(work)

    def listing(self, send_id: int, state: str, limit: int = 50) -> list[RecipientRow]:
        """Up to `limit` rows in `state`, for status reports."""
        r = send_recipients.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(r.id, r.email, r.name, r.state, r.attempts, r.provider_id,
                       r.last_error, r.batch)
                .where(r.send_id == send_id, r.state == state)
                .order_by(r.id).limit(limit)).all()
        return [RecipientRow(*row) for row in rows]

    def reasons(self, send_id: int, state: str = "skipped") -> list[tuple[str, int]]:
        """(why, how many) of the send's rows in `state`, most frequent first."""
        r = send_recipients.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(r.last_error, func.count()).where(
                r.send_id == send_id, r.state == state).group_by(r.last_error)).all()
        return sorted(((why or "", n) for why, n in rows), key=lambda x: (-x[1], x[0]))
