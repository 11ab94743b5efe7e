"""`newsletter issues`: every issue of the publication with its date, language, editions and
where it stands, from a draft to "sent to N".

The state of an issue that has sends comes from its sends (the ledger's rows, read through
`Ledger.sends.of_issue`): sending, paused (a send the reputation guard paused, or one stopped or
interrupted and not yet resumed), scheduled (a send waiting at its provider for its time), or
sent to N people. An issue without sends is built and checked (offline, without SpamAssassin):
failing checks, approved (the approvals newsletter.yaml asks for, of its current content; any
approval when none is required), or draft.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from newsletter.compose.editions import edition_group, issue_manifests
from newsletter.core.errors import InputError
from newsletter.core.words import plural
from newsletter.dispatch.approval import sign_off
from newsletter.dispatch.ledger import Ledger, SendRow, is_alive

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.compose.publication import Publication

#: the states an issue can be in, in the order of a send's life
STATES = ("failing checks", "draft", "approved", "scheduled", "sending", "paused", "sent")


@dataclass
class IssueLine:
    """One issue, as `newsletter issues` lists it."""

    slug: str
    date: str
    language: str
    editions: list[tuple[str, str]]  # (slug, language) of the issue's other editions
    state: str  # one of STATES
    detail: str = ""  # what the state rests on: counts, names, times
    sent: int = 0  # people who accepted a send of this issue
    approvals: list[str] = field(default_factory=list)  # of the current content

    def text(self) -> str:
        """The state with its detail: "sent to 1,204 — 2 sends, last ...", "draft"."""
        state = f"sent to {self.sent:,}" if self.state == "sent" else self.state
        return state + (f" — {self.detail}" if self.detail else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "date": self.date,
            "language": self.language,
            "editions": [{"slug": s, "language": lang} for s, lang in self.editions],
            "state": self.state,
            "detail": self.detail,
            "sent": self.sent,
            "approvals": self.approvals,
        }


def _when(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def send_state(sends: list[SendRow], now: dt.datetime) -> tuple[str, str, int] | None:
    """(state, detail, people reached) from an issue's sends; None when none counts yet."""
    reached = sum(s.accepted for s in sends)
    for send in sends:
        if send.state == "sending" and send.owner and is_alive(send.owner, send.heartbeat_at):
            return ("sending", f"send #{send.id}: {send.accepted:,} of {send.total:,} "
                    "accepted", reached)
    for send in sends:
        if send.paused:
            return ("paused", f"send #{send.id} to '{send.segment}' paused by the reputation "
                    f"guard at {send.accepted:,} of {send.total:,}; `newsletter status "
                    f"{send.issue}` shows why, `newsletter send {send.issue} --resume` goes on",
                    reached)
        if send.state not in ("completed", "cancelled"):  # stopped, interrupted
            why = f": {send.last_error}" if send.last_error else ""
            return ("paused", f"send #{send.id} to '{send.segment}' stopped at "
                    f"{send.accepted:,} of {send.total:,}{why}; `newsletter send` resumes it",
                    reached)
    waiting = [s for s in sends if s.state == "completed" and s.send_at and s.send_at > now]
    if waiting:
        send = waiting[-1]
        return ("scheduled", f"send #{send.id} to {plural(send.total, 'person')} at "
                f"{_when(send.send_at)}", reached)  # type: ignore[arg-type]
    if reached:
        last = max(s.finished_at or s.updated_at for s in sends)
        return "sent", f"{plural(len(sends), 'send')}, last {_when(last)}", reached
    return None


def _unsent(pub: Publication, slug: str, engine: Engine, line: IssueLine) -> None:
    """Fill in the state of an issue nobody has received yet: its checks and approvals."""
    from newsletter.checks import run
    from newsletter.compose import build_issue

    try:
        build = build_issue(pub, slug)
    except InputError as exc:
        line.state = "failing checks"
        line.detail = f"does not build: {plural(len(exc.problems), 'problem')}"
        return
    errors = run(pub, build, spam=False).errors
    state = sign_off(pub, build, engine)
    line.approvals = [a.approver for a in state.current]
    if errors:
        line.state, line.detail = "failing checks", plural(len(errors), "error")
    elif state.approved:
        line.state, line.detail = "approved", state.describe()
    else:
        line.state = "draft"
        line.detail = state.describe() if state.required or state.earlier else ""


def issue_lines(pub: Publication, *, now: dt.datetime | None = None) -> list[IssueLine]:
    """Every issue under issues/ (those whose issue.yaml cannot be read too; a message such as
    the welcome is no issue), newest date first, then by slug."""
    from newsletter.db import database

    now = now or dt.datetime.now(dt.UTC)
    with database(pub.settings) as engine:
        ledger = Ledger(engine)
        lines = []
        manifests = issue_manifests(pub)
        for slug in (folder.name for folder in pub.issue_folders()):
            manifest = manifests.get(slug, {})  # {} when issue.yaml cannot be read
            language = str(manifest.get("language") or pub.config.language)
            editions = [(e.slug, e.language) for e in edition_group(pub, slug) if e.slug != slug]
            line = IssueLine(slug, str(manifest.get("date") or ""), language, editions, "draft")
            found = send_state(ledger.sends.of_issue(slug), now)
            if found is None:
                _unsent(pub, slug, engine, line)
            else:
                line.state, line.detail, line.sent = found
            lines.append(line)
    return sorted(lines, key=lambda line: (line.date, line.slug), reverse=True)
