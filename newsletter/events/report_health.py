"""Each send's health in the issue report: its hard-bounce and complaint rates per message
handed over (newsletter.db.health, the figures the reputation guard judges), beside the guard's
thresholds and the limits receiving providers publish (newsletter.core.reputation).

A rate the send's transport could not measure is None, with a note: the outbox delivers
nothing; an SMTP send without a bounce mailbox knows only the refusals of its own hand-over
(later bounces and every complaint go back to the relay's sender address unread).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection

from newsletter.core.reputation import Figures, Thresholds, described, judge, passed
from newsletter.db.health import figures_of
from newsletter.events.report_sends import SendFacts

#: a send's verdict in words, by the guard's thresholds
VERDICTS = {"over": "over the guard's pause threshold",
            "warning": "at half of a pause threshold or more",
            "within": "within the guard's thresholds", "too few": "too few handed over to judge",
            "not measured": "not measured"}


@dataclass
class SendHealth:
    """One send's figures and what they amount to."""

    send: int
    transport: str
    handed: int
    hard_bounces: int | None  # people (refusals at the hand-over included), None: unknown
    refused: int  # of them, refused by the server at the hand-over
    complaints: int | None
    bounce_rate: float | None
    complaint_rate: float | None
    verdict: str  # over | warning | within | too few | not measured (the guard's thresholds)
    passed: list[str] = field(default_factory=list)  # published limits reached or passed
    note: str = ""  # why a figure is unknown, or how partly it is known


def _verdict(figures: Figures, thresholds: Thresholds) -> str:
    judged = judge(figures, thresholds)
    if not judged.judged:
        return "too few"
    return "over" if judged.pause else "warning" if judged.warnings else "within"


def _known(send: SendFacts) -> tuple[bool, bool, str]:
    """(bounces known, complaints known, note) for the send's transport."""
    if send.transport == "outbox":
        return False, False, "the outbox delivers nothing: no bounce or complaint can come"
    bounces, complaints = send.reports("bounce"), send.reports("complaint")
    if send.transport == "smtp" and not bounces:
        return True, False, ("only the refusals of the hand-over are known: later bounces and "
                             "complaints come back by mail, to a bounce mailbox (bounces: in "
                             "newsletter.yaml) this publication does not have")
    return bounces, complaints, ""


def send_health(conn: Connection, sends: list[SendFacts],
                thresholds: Thresholds) -> list[SendHealth]:
    """The health of each send, in the order given."""
    figures = figures_of(conn, [s.id for s in sends])
    found = []
    for send in sends:
        f = figures[send.id]
        bounces, complaints, note = _known(send)
        shown = Figures(f.handed, f.hard if bounces else 0,
                        f.complaints if complaints else 0, f.refused)
        limits = described((passed("bounces", shown.bounce_rate) if bounces else [])
                           + (passed("complaints", shown.complaint_rate) if complaints else []))
        found.append(SendHealth(
            send.id, send.transport, f.handed, shown.hard if bounces else None, f.refused,
            shown.complaints if complaints else None,
            shown.bounce_rate if bounces else None,
            shown.complaint_rate if complaints else None,
            _verdict(shown, thresholds) if bounces or complaints else "not measured",
            limits, note))
    return found
