"""What the send commands share: a send's options (`SendOptions`), times, durations and
SendGrid's scheduling limits."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from newsletter.core.errors import NewsletterError

#: SendGrid cannot cancel a scheduled batch later than this before its send_at
CANCEL_DEADLINE = dt.timedelta(minutes=10)
#: SendGrid keeps at most this many batches cancelled or paused at a time
MAX_CANCELLED_BATCHES = 10


@dataclass(frozen=True)
class SendOptions:
    """How one `newsletter send` is to run, as its options say; every one off by default.
    Options that exclude each other are refused when the object is made (NewsletterError)."""

    transport: str | None = None  # default: NEWSLETTER_TRANSPORT (or the send resumed)
    dry_run: bool = False
    resume: bool = False  # take up the send the reputation guard paused (or stopped)
    again: bool = False  # also to people the issue family already reached
    retry_failed: bool = False  # reopen the last completed send's failed recipients
    at: dt.datetime | None = None  # schedule (SendGrid)
    undo_window: dt.timedelta | None = None  # schedule this far ahead, cancellable (SendGrid)
    # unknown outcomes of a send to resume, settled by the operator: all, by batch, by address
    resend_unknown: bool = False
    accept_unknown: bool = False
    resend_batches: tuple[int, ...] = ()
    accept_batches: tuple[int, ...] = ()
    resend_recipients: tuple[str, ...] = ()
    accept_recipients: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.resend_unknown and self.accept_unknown:
            raise NewsletterError("--resend-unknown and --accept-unknown exclude each other")
        if set(self.resend_batches) & set(self.accept_batches):
            raise NewsletterError("a batch cannot be both resent and accepted")
        both = ({a.lower() for a in self.resend_recipients}
                & {a.lower() for a in self.accept_recipients})
        if both:
            raise NewsletterError(f"{sorted(both)[0]} cannot be both resent and accepted")
        if self.at is not None and self.undo_window is not None:
            raise NewsletterError("--at and --undo-window exclude each other")

    @property
    def accepting(self) -> bool:
        """Whether the operator records some unknown outcomes as accepted."""
        return bool(self.accept_unknown or self.accept_batches or self.accept_recipients)

    def settling(self) -> SendOptions:
        """Only what settles a resumed send's unknown outcomes (and `resume`): what a subject
        test passes on to the resumed sends it carries."""
        return SendOptions(
            resume=self.resume, resend_unknown=self.resend_unknown,
            accept_unknown=self.accept_unknown, resend_batches=self.resend_batches,
            accept_batches=self.accept_batches, resend_recipients=self.resend_recipients,
            accept_recipients=self.accept_recipients)


@dataclass(frozen=True)
class SubjectTestOptions:
    """What `send --test-subjects` asks beside the send's own options (SendOptions): the
    subjects, the share of the segment they are tried on, the wait before the decision and
    what people did that decides (checked by dispatch.subjects.run.propose)."""

    subjects: tuple[str, ...]
    sample: int = 20  # percent of the segment
    decide_after: dt.timedelta = dt.timedelta(hours=4)
    measure: str = "clicks"  # or "opens"


#: a plain send: no option given
DEFAULTS = SendOptions()


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
    from newsletter.compose.fields import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise NewsletterError(f"--undo-window: {exc}") from None


def minutes(window: dt.timedelta) -> str:
    count = int(window.total_seconds() // 60)
    return f"{count} minutes" if count != 1 else "1 minute"


def listed(numbers: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in numbers)
