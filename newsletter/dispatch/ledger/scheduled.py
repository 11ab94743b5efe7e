"""The provider's batch ids of a scheduled (undo-window) send: one per run, each covering the
ledger batches from its `first_batch` on, so a batch id can be cancelled and exactly its
recipients settled."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from newsletter.db.ledger_tables import send_batches, send_recipients, sends
from newsletter.dispatch.ledger.sends import counters, counts_of
from newsletter.dispatch.ledger.store import LedgerStore, utcnow


@dataclass(frozen=True)
class RunBatch:
    """A provider's batch id one run of a scheduled send used."""

    id: int
    batch_id: str
    send_at: dt.datetime
    first_batch: int
    state: str
    created_at: dt.datetime


class Scheduled:
    """The batch ids of scheduled sends."""

    def __init__(self, store: LedgerStore):
        self.store = store

    def open_batch(self, send_id: int, batch_id: str, send_at: dt.datetime) -> RunBatch:
        """Record the provider's batch id this run uses from its next ledger batch on."""
        now = utcnow()

        def work(conn: Connection) -> RunBatch:
            stored = conn.execute(select(sends.c.batches).where(sends.c.id == send_id)
                                  ).scalar_one()
            first = max(stored, self.store.batches.get(send_id, 0)) + 1
            row_id = conn.execute(insert(send_batches).values(
                send_id=send_id, batch_id=batch_id, send_at=send_at, first_batch=first,
                state="open", created_at=now).returning(send_batches.c.id)).scalar_one()
            self.store.fence(conn, send_id, send_at=send_at, batch_id=batch_id)
            self.store.skip_to(send_id, first - 1)
            return RunBatch(row_id, batch_id, send_at, first, "open", now)

        return self.store.write(work)

    def runs(self, send_id: int) -> list[RunBatch]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(send_batches).where(send_batches.c.send_id == send_id)
                                .order_by(send_batches.c.first_batch)).all()
        return [RunBatch(r.id, r.batch_id, r.send_at, r.first_batch, r.state, r.created_at)
                for r in rows]

    def _range(self, send_id: int, run: RunBatch) -> Any:
        later = [b.first_batch for b in self.runs(send_id) if b.first_batch > run.first_batch]
        condition = send_recipients.c.batch >= run.first_batch
        if later:
            condition = condition & (send_recipients.c.batch < min(later))
        return condition

    def unknown_in(self, send_id: int, run: RunBatch) -> int:
        """Rows of unknown fate handed over under `run`'s batch id."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                send_recipients.c.send_id == send_id, send_recipients.c.state == "unknown",
                self._range(send_id, run))).scalar_one()

    def cancelled(self, send_id: int, run: RunBatch, *, requeue: bool, reason: str = "") -> int:
        """The provider cancelled `run`'s batch id: nothing handed over under it is delivered.
        Its accepted and unknown rows go back to `pending` (`requeue`, a resume) or become
        `cancelled` with `reason` (`send cancel`): they reached nobody. Returns how many rows
        moved."""
        where = (send_recipients.c.send_id == send_id,
                 send_recipients.c.state.in_(["accepted", "unknown"]),
                 self._range(send_id, run))

        def work(conn: Connection) -> int:
            now = utcnow()
            conn.execute(update(send_batches).where(send_batches.c.id == run.id)
                         .values(state="cancelled"))
            values: dict[str, Any] = ({"state": "pending", "provider_id": None,
                                       "last_error": None} if requeue else
                                      {"state": "cancelled", "last_error": reason})
            changed = conn.execute(update(send_recipients).where(*where)
                                   .values(updated_at=now, **values)).rowcount
            counts = {"updated_at": now, **counters(counts_of(conn, send_id))}
            if requeue:  # a resume, under its lease
                self.store.fence(conn, send_id, **counts)
            else:  # `send cancel`, which took the lease from any holder
                conn.execute(update(sends).where(sends.c.id == send_id).values(**counts))
            return changed

        return self.store.write(work)
