"""A send's reputation figures and the one rule that judges them, beside the limits receiving
providers publish.

A send's **hard-bounce rate** is its hard bounces per message handed over, its **complaint
rate** its complaints per message handed over (newsletter.db.health reads both from the stored
tables). The reputation guard (newsletter.dispatch.guard) judges them before each batch with
`judge()`: once at least `min_sample` messages were handed over, a rate **over** its pause
threshold pauses the send, and a rate at half its threshold or more is a warning. `newsletter
status` and `newsletter report` show the same verdict, beside `LIMITS`.

Rates are compared as exact fractions (15 of 300 is exactly 5%, not over it).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def parse_percent(value: object) -> float:
    """`5%`, `0.1%` as a fraction (0.05, 0.001); ValueError for anything else (a bare number
    would be ambiguous: 0.1 could mean 0.1% or 10%)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.endswith("%"):
        raise ValueError(f"{value!r} is not a percentage: write it like 5% or 0.1%")
    try:
        number = float(text[:-1].strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a percentage: write it like 5% or 0.1%") from None
    if not 0 < number <= 100:
        raise ValueError(f"{value!r} must be more than 0% and at most 100%")
    return number / 100


def percent(rate: float, digits: int = 2) -> str:
    """A rate for people: 0.075 -> `7.50%`."""
    return f"{rate:.{digits}%}"


def setting(rate: float) -> str:
    """A threshold as newsletter.yaml spells it: 0.05 -> `5%`, 0.001 -> `0.1%`."""
    text = f"{rate * 100:.6f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _exact(rate: float) -> Fraction:
    return Fraction(repr(rate)).limit_denominator(10**9)


@dataclass(frozen=True)
class Thresholds:
    """`reputation:` in newsletter.yaml (the defaults are Amazon SES's review levels)."""

    min_sample: int = 1000
    bounce_pause: float = 0.05
    complaint_pause: float = 0.001

    def describe(self) -> str:
        return (f"pauses over {setting(self.bounce_pause)} hard bounces or "
                f"{setting(self.complaint_pause)} complaints, from {self.min_sample:,} "
                "messages handed over")


@dataclass(frozen=True)
class Figures:
    """What a send (or a stretch of it) did: messages handed over, hard bounces (webhook and
    mailbox events, and `refused`: the servers' own 5xx answers at the hand-over, included in
    `hard`) and complaints, each counted in people."""

    handed: int = 0
    hard: int = 0
    complaints: int = 0
    refused: int = 0

    @property
    def bounce_rate(self) -> float:
        return self.hard / self.handed if self.handed else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.handed if self.handed else 0.0

    def since(self, start: Figures) -> Figures:
        """The figures of the stretch after `start` (a resume's baseline)."""
        return Figures(max(0, self.handed - start.handed), max(0, self.hard - start.hard),
                       max(0, self.complaints - start.complaints),
                       max(0, self.refused - start.refused))


@dataclass(frozen=True)
class Verdict:
    """`figures`: what was judged; `judged`: whether enough messages were handed over to
    judge at all; `pause`: why the send must pause (None: it may go on); `warnings`: rates at
    half their threshold or more."""

    figures: Figures
    judged: bool = False
    pause: str | None = None
    warnings: tuple[str, ...] = ()


def judge(figures: Figures, thresholds: Thresholds) -> Verdict:
    """The guard's verdict on `figures`: nothing before `min_sample` messages were handed
    over; then a rate over its threshold pauses, one at half of it or more warns."""
    if figures.handed < thresholds.min_sample or figures.handed <= 0:
        return Verdict(figures)
    reasons: list[str] = []
    warnings: list[str] = []
    for name, count, limit, key in (
            ("hard bounces", figures.hard, thresholds.bounce_pause, "bounce_pause"),
            ("complaints", figures.complaints, thresholds.complaint_pause, "complaint_pause")):
        rate = Fraction(count, figures.handed)
        words = (f"{name} at {percent(count / figures.handed)} ({count:,} of "
                 f"{figures.handed:,} handed over)")
        if rate > _exact(limit):
            reasons.append(f"{words} are over {key} {setting(limit)}")
        elif rate * 2 >= _exact(limit):
            warnings.append(f"{words} have reached half of {key} {setting(limit)}")
    return Verdict(figures, True, "; ".join(reasons) or None, tuple(warnings))


@dataclass(frozen=True)
class Limit:
    """A rate a receiving provider publishes, and what it does past it."""

    who: str
    kind: str  # "bounces" or "complaints"
    rate: float
    meaning: str


#: Published limits, shown beside each send's rates. Gmail's and Yahoo's rules for bulk
#: senders (Gmail's "Email sender guidelines": keep the spam rate in Postmaster Tools below
#: 0.10% and never reach 0.30%), Amazon SES's account review and pause levels.
LIMITS: tuple[Limit, ...] = (
    Limit("Gmail", "complaints", 0.001, "aim under"),
    Limit("Gmail and Yahoo, bulk senders", "complaints", 0.003, "stay under"),
    Limit("Amazon SES", "complaints", 0.001, "reviews an account at"),
    Limit("Amazon SES", "complaints", 0.005, "pauses an account at"),
    Limit("Amazon SES", "bounces", 0.05, "reviews an account at"),
    Limit("Amazon SES", "bounces", 0.10, "pauses an account at"),
)


def described(limits: list[Limit]) -> list[str]:
    """Limits in words, one entry per provider: `Amazon SES: reviews an account at 5%,
    pauses an account at 10%`."""
    said: dict[str, list[str]] = {}
    for limit in limits:
        said.setdefault(limit.who, []).append(f"{limit.meaning} {setting(limit.rate)}")
    return [f"{who}: {', '.join(words)}" for who, words in said.items()]


def limits_of(kind: str) -> str:
    """The published limits for `kind` in words: `Gmail: aim under 0.1%; Gmail and Yahoo,
    bulk senders: stay under 0.3%; ...`."""
    return "; ".join(described([limit for limit in LIMITS if limit.kind == kind]))


def passed(kind: str, rate: float) -> list[Limit]:
    """The published limits of `kind` that `rate` reaches or passes."""
    return [limit for limit in LIMITS if limit.kind == kind and rate >= limit.rate]
