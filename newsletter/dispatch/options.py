"""Small things the send commands share: times, durations, and the schedule of a send within
the limits its transport declares (newsletter.providers.base.Scheduling)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from newsletter.core.errors import NewsletterError
from newsletter.providers import TRANSPORTS, capabilities, transport_class

if TYPE_CHECKING:
    from newsletter.compose.publication import Publication
    from newsletter.dispatch.ledger import Ledger, SendRow


def utc_minute(when: dt.datetime) -> str:
    """A time as the dispatch commands show it: `2026-11-24 14:00 UTC`."""
    return f"{when:%Y-%m-%d %H:%M} UTC"


def parse_at(text: str) -> dt.datetime:
    """`--at` as an aware UTC time; it must name its zone (2026-11-24T14:00Z)."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise NewsletterError(f"--at {text!r} is not a time like 2026-11-24T14:00Z") from None
    if when.tzinfo is None:
        raise NewsletterError(f"--at {text!r} needs a time zone, e.g. 2026-11-24T14:00Z (UTC)")
    return when.astimezone(dt.UTC)


def parse_window(text: str) -> dt.timedelta:
    """An undo window like `15m`, `1h`, `90s` or `1h30m`."""
    from newsletter.compose.schema import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise NewsletterError(f"--undo-window: {exc}") from None


def minutes(window: dt.timedelta) -> str:
    count = int(window.total_seconds() // 60)
    return f"{count} minutes" if count != 1 else "1 minute"


def listed(numbers: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in numbers)


def schedule_window(pub: Publication, ledger: Ledger, resumed: SendRow | None, chosen: str,
                    at: dt.datetime | None, undo_window: dt.timedelta | None
                    ) -> dt.timedelta | None:
    """The undo window of the send: given, from newsletter.yaml (new sends through a transport
    that schedules), or the one a scheduled send was started with; refused for a transport
    that does not schedule, and beyond the limits of one that does."""
    declared = capabilities(chosen)
    scheduling = declared.scheduling
    if resumed is None and undo_window is None and scheduling is not None and at is None:
        configured = transport_class(chosen).undo_window(pub.config)
        undo_window = parse_window(configured) if configured else None
    if resumed is not None and undo_window is None and scheduling is not None:
        runs = ledger.scheduled.runs(resumed.id)
        if runs:
            last = runs[-1]
            undo_window = max(dt.timedelta(minutes=1),
                              last.send_at - last.created_at - scheduling.cancel_deadline)
    if (at is not None or undo_window is not None) and scheduling is None:
        what = "--at" if at is not None else "--undo-window"
        able = " or ".join(n for n in TRANSPORTS if capabilities(n).scheduling is not None)
        raise NewsletterError(f"{what} needs the {able} transport (its send_at schedules the "
                              f"send); the {chosen} transport sends at once"
                              + (f": {declared.unscheduled}" if declared.unscheduled else ""))
    if scheduling is None:
        return undo_window
    if at is not None:
        scheduling.check_time(at)
    if undo_window is not None:
        longest = scheduling.max_ahead - scheduling.cancel_deadline
        if not dt.timedelta(minutes=1) <= undo_window <= longest:
            raise NewsletterError(f"the undo window must be between 1 minute and "
                                  f"{_span(longest)} ({scheduling.provider} schedules at most "
                                  f"{_span(scheduling.max_ahead)} ahead)")
    return undo_window


def _span(length: dt.timedelta) -> str:
    """`71 hours 50 minutes`, `72 hours`."""
    hours, minutes = divmod(int(length.total_seconds()) // 60, 60)
    return " ".join(filter(None, [f"{hours} hours" if hours else "",
                                  f"{minutes} minutes" if minutes else ""]))
