"""What the send commands share: a send's options (`SendOptions`), times, durations, and the
schedule of a send within the limits its transport declares (providers.base.Scheduling)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.core.errors import NewsletterError
from newsletter.providers import TRANSPORTS, capabilities, transport_class

if TYPE_CHECKING:
    from newsletter.compose.publication import Publication
    from newsletter.dispatch.ledger import Ledger, SendRow


@dataclass(frozen=True)
class SendOptions:
    """How one `newsletter send` is to run, as its options say; every one off by default.
    Options that exclude each other are refused when the object is made (NewsletterError)."""

    transport: str | None = None  # default: NEWSLETTER_TRANSPORT (or the send resumed)
    dry_run: bool = False
    resume: bool = False  # take up the send the reputation guard paused (or stopped)
    again: bool = False  # also to people the issue family already reached
    retry_failed: bool = False  # reopen the last completed send's failed recipients
    at: dt.datetime | None = None  # schedule (a transport that declares scheduling)
    undo_window: dt.timedelta | None = None  # schedule this far ahead, cancellable (the same)
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

    @property
    def subject_lines(self) -> tuple[str, ...]:
        """The subjects as they are tested and stored (without surrounding blanks)."""
        return tuple(s.strip() for s in self.subjects)


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
