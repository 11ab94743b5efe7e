"""The reputation guard's pauses in the ledger: a paused send, why, and its resume.

A pause is one fenced write of the run that decided it: the send's `paused_at` and a
`send_pauses` row with the figures and thresholds judged. The send's state stays `stopped`
once the run has ended, so it keeps its issue (one active send per issue) and `send cancel`
gives it up as any stopped send. A plain re-run refuses a paused send (SendPaused);
`send ISSUE --resume` takes its lease (Sends.acquire) and, in that transaction, clears
`paused_at` and stamps the pause row with the send's totals then: the baseline the guard
judges the rest of the send from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from newsletter.core.reputation import Figures, Thresholds, Verdict
from newsletter.db.health import figures_of
from newsletter.db.ledger_tables import send_pauses, sends
from newsletter.dispatch.ledger.store import LedgerStore, SendBusy, utcnow


class SendPaused(SendBusy):
    """The send was paused by the reputation guard: only `send --resume` takes it up."""


@dataclass(frozen=True)
class Pause:
    """One pause of a send, as the ledger keeps it."""

    send_id: int
    paused_at: dt.datetime
    reason: str
    judged: Figures  # since the send began or its previous resume
    thresholds: Thresholds
    resumed_at: dt.datetime | None = None
    resumed_by: str | None = None
    baseline: Figures | None = None  # the send's totals at the resume


def _pause(row) -> Pause:
    baseline = (Figures(row.resumed_handed, row.resumed_hard, row.resumed_complaints)
                if row.resumed_at is not None else None)
    return Pause(row.send_id, row.paused_at, row.reason,
                 Figures(row.handed, row.hard, row.complaints),
                 Thresholds(row.min_sample, row.bounce_pause, row.complaint_pause),
                 row.resumed_at, row.resumed_by, baseline)


def resume_in(conn: Connection, send_id: int, owner: str, now: dt.datetime) -> bool:
    """Inside Sends.acquire's transaction: lift the send's pause, recording the resume and
    the send's totals now on its open pause row. False when the send was not paused."""
    paused = conn.execute(select(sends.c.paused_at).where(sends.c.id == send_id)).scalar_one()
    if paused is None:
        return False
    totals = figures_of(conn, [send_id])[send_id]
    p = send_pauses.c
    conn.execute(update(send_pauses).where(p.send_id == send_id, p.resumed_at.is_(None))
                 .values(resumed_at=now, resumed_by=owner, resumed_handed=totals.handed,
                         resumed_hard=totals.hard, resumed_complaints=totals.complaints))
    conn.execute(update(sends).where(sends.c.id == send_id).values(paused_at=None))
    return True


class Pauses:
    """Pausing sends and reading their pauses."""

    def __init__(self, store: LedgerStore):
        self.store = store

    def pause(self, send_id: int, verdict: Verdict, thresholds: Thresholds) -> None:
        """Record the guard's pause of the send, under this run's lease (LeaseLost when
        another process holds it)."""
        assert verdict.pause is not None
        now = utcnow()
        judged = verdict.figures

        def work(conn: Connection) -> None:
            conn.execute(insert(send_pauses).values(
                send_id=send_id, paused_at=now, reason=verdict.pause, handed=judged.handed,
                hard=judged.hard, complaints=judged.complaints,
                min_sample=thresholds.min_sample, bounce_pause=thresholds.bounce_pause,
                complaint_pause=thresholds.complaint_pause))
            self.store.fence(conn, send_id, paused_at=now, last_error=f"paused by the "
                             f"reputation guard: {verdict.pause}", updated_at=now)

        self.store.write(work)

    def of(self, send_ids: list[int]) -> dict[int, list[Pause]]:
        """Each send's pauses, oldest first."""
        found: dict[int, list[Pause]] = {send_id: [] for send_id in send_ids}
        if not send_ids:
            return found
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(send_pauses).where(send_pauses.c.send_id.in_(send_ids))
                                .order_by(send_pauses.c.id))
            for row in rows:
                found[row.send_id].append(_pause(row))
        return found

    def baseline(self, send_id: int) -> Figures:
        """The totals the send had when it was last resumed: see `baseline_of`."""
        return baseline_of(self.of([send_id])[send_id])


def baseline_of(pauses: list[Pause]) -> Figures:
    """The totals a send had at its last resume (zeros when it never was resumed): the guard
    judges what the send does after them."""
    resumed = [p.baseline for p in pauses if p.baseline is not None]
    return resumed[-1] if resumed else Figures()
