"""Small things the send commands share: times, durations and SendGrid's scheduling limits."""

from __future__ import annotations

import datetime as dt

from newsletter.core.errors import NewsletterError

#: SendGrid cannot cancel a scheduled batch later than this before its send_at
CANCEL_DEADLINE = dt.timedelta(minutes=10)
#: SendGrid keeps at most this many batches cancelled or paused at a time
MAX_CANCELLED_BATCHES = 10


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
