"""The preview's links to other areas: checks, subscribers and test sends.

Each is imported lazily, on first use, so the preview starts without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.compose import Build
from newsletter.compose.publication import Publication
from newsletter.core.errors import Problem
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient


@dataclass(frozen=True)
class Finding:
    """One line of the check panel, whatever produced it."""

    severity: str  # "error", "warning" or "info"
    message: str
    location: str = ""
    hint: str = ""


def where(root: Path, file: Path | str, line: int | None) -> str:
    """`file:line`, relative to the publication root when inside it."""
    text = str(file)
    try:
        text = str(Path(file).resolve().relative_to(root))
    except (ValueError, OSError):
        pass
    return f"{text}:{line}" if line else text


def problem_finding(root: Path, problem: Problem) -> Finding:
    return Finding(problem.severity, problem.message, where(root, problem.file, problem.line))


def _as_finding(root: Path, item: Any) -> Finding:
    if isinstance(item, Problem):
        return problem_finding(root, item)
    if getattr(item, "file", None):
        location = where(root, item.file, getattr(item, "line", None))
    else:
        location = getattr(item, "location", "")
        location = location() if callable(location) else str(location or "")
    hint = getattr(item, "hint", None) or getattr(item, "fix", None) or ""
    return Finding(
        str(getattr(item, "severity", "warning")).lower(),
        str(getattr(item, "message", item)),
        location,
        str(hint),
    )


def check_findings(pub: Publication, build: Build, *, spam: bool = False,
                   subjects: tuple[str, ...] = ()) -> list[Finding]:
    """The results of `newsletter check` (offline) for a build (and a subject test's
    `subjects`)."""
    from newsletter.checks import run_checks

    found = run_checks(pub, build, online=False, spam=spam, subjects=subjects)
    return [_as_finding(pub.root, item) for item in found]


def _recipient(subscriber: Any) -> Recipient:
    return Recipient(
        email=subscriber.email, name=subscriber.name or "", attributes=dict(subscriber.attributes)
    )


_engines: dict[str, Any] = {}


def _database(pub: Publication) -> Any | None:
    """The publication's database engine, or None when there is none yet (never creates one)."""
    url = pub.settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    if url not in _engines:
        from newsletter.db import open_database

        _engines[url] = open_database(url)
    return _engines[url]


def search_recipients(pub: Publication, query: str, limit: int = 20) -> list[Recipient]:
    """The first `limit` subscribers whose email or name contains `query` (any case)."""
    engine = _database(pub)
    if engine is None:
        return []
    from sqlalchemy import func, or_

    from newsletter.audience import iter_batches
    from newsletter.db.tables import subscribers

    where = None
    if query:
        pattern = "%" + query.lower().replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
        where = or_(
            subscribers.c.email_key.like(pattern, escape="\\"),
            func.lower(subscribers.c.name).like(pattern, escape="\\"),
        )
    batch = next(iter_batches(engine, where, batch_size=limit), [])
    return [_recipient(s) for s in batch]


def find_recipient(pub: Publication, email: str) -> Recipient:
    """The subscriber with `email`, or the sample recipient when there is no such subscriber."""
    if not email or email.lower() == SAMPLE_RECIPIENT.email:
        return SAMPLE_RECIPIENT
    engine = _database(pub)
    if engine is None:
        return SAMPLE_RECIPIENT
    from newsletter.audience import get_subscriber

    with engine.connect() as conn:
        found = get_subscriber(conn, email)
    return _recipient(found) if found else SAMPLE_RECIPIENT


def send_test(pub: Publication, build: Build, to: list[str] | None, transport: str | None,
              recipient: Recipient | None = None) -> Any:
    """Send `build` to `to` (or the publication's test recipients) through `transport`,
    personalised as `recipient` (default: the sample recipient)."""
    from newsletter.dispatch import send_test as send

    return send(pub, build, to=to, transport=transport, recipient=recipient)
