"""A planned send (`SendPlan`): what `plan_send` (dispatch.plan) or a resume (dispatch.resume)
decided, and what running it needs: its recipients, the consent check and the reputation guard
of each batch, and the summary shown before it starts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from newsletter.dispatch.artifact import Artifact
from newsletter.dispatch.guard import ReputationGuard
from newsletter.dispatch.ledger import ConsentCheck, Ledger, SendRow
from newsletter.dispatch.ledger.reached import recipients_of
from newsletter.dispatch.options import DEFAULTS, SendOptions, minutes, utc_minute
from newsletter.providers import Transport

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication


@dataclass
class SendPlan:
    """A send about to start or resume, with everything checked that can be checked."""

    pub: Publication
    slug: str
    artifact: Artifact  # what the send sends
    build: Build | None  # the issue as built now (new sends; resumes of sends without artifact)
    segment: str  # the segment's name, or several joined with " + "
    transport: Transport
    ledger: Ledger
    members: Any  # the segments' WHERE clause over subscribers
    send: SendRow | None  # the send to resume, or None for a new one
    count: int  # recipients this run will hand over
    family: tuple[str, ...] = ()
    reach: str = "once"  # see dispatch.ledger.reached
    frozen: bool = True  # False: the artifact is to be stored (a send an earlier version began)
    options: SendOptions = DEFAULTS  # as given
    undo_window: dt.timedelta | None = None  # as given, configured, or the resumed send's
    retry_failed: bool = False  # this run reopens a completed send's failed recipients
    left_out: list[tuple[int, str]] = field(default_factory=list)  # (how many, why)
    run_started: dt.datetime | None = None  # `send --editions --again`: this run's start
    notes: list[str] = field(default_factory=list)

    @property
    def at(self) -> dt.datetime | None:
        """When a new send is scheduled for (`--at`)."""
        return self.options.at

    @property
    def action(self) -> str:
        if self.send and self.send.paused:
            return f"resume send #{self.send.id}, paused by the reputation guard"
        if self.send and self.retry_failed:
            return f"retry the failed recipients of send #{self.send.id}"
        return f"resume send #{self.send.id}" if self.send else "new send"

    def recipients(self, conn: Connection, send_ids: Sequence[int] | None = None) -> Any:
        """Who a new send goes to: a WHERE clause over subscribers, for statements on `conn`
        (it reads the issue family's sends through it unless given `send_ids`: see
        `reached.recipients_of`)."""
        return recipients_of(conn, self.family, self.members, self.reach, self.run_started,
                             send_ids)

    def consent_check(self, send: SendRow) -> ConsentCheck:
        """What each batch of `send` is checked against right before its hand-over."""
        from newsletter.audience.erasure import any_erased

        with self.ledger.engine.connect() as conn:
            erasures = any_erased(conn)
        return ConsentCheck(send.id, self.family, send.reach, send.created_at,
                            tuple(self.pub.settings.secrets), erasures)

    def reputation_guard(self, send: SendRow) -> ReputationGuard:
        """What judges `send`'s own bounces and complaints before each batch: newsletter.yaml's
        thresholds now, from the totals of its last resume."""
        return ReputationGuard(self.ledger.store.reads, send.id,
                               self.pub.config.reputation.thresholds,
                               self.ledger.pauses.baseline(send.id))

    def summary(self) -> list[tuple[str, str]]:
        """What will happen, as label/value pairs."""
        rows = [
            ("Issue", self.slug),
            ("Subject", self.artifact.subject),
            ("Segment", self.segment),
            ("Recipients", f"{self.count:,}"),
            ("Transport", f"{self.transport.name} ({self.transport.where})"),
            ("Action", self.action),
            ("Guard", self.pub.config.reputation.thresholds.describe()),
        ]
        for n, (count, why) in enumerate(self.left_out):
            rows.insert(4 + n, ("Left out" if n == 0 else "", f"{count:,} {why}"))
        when = self.at or (self.send.send_at if self.send and not self.undo_window else None)
        if when:
            rows.append(("Scheduled", utc_minute(when)))
        if self.undo_window:
            rows.append(("Undo window", f"{minutes(self.undo_window)}: `newsletter send cancel "
                                        f"{self.slug}` stops it until then"))
        return rows
