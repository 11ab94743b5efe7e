"""`send ISSUE --segment NAME --editions`: each reader gets the edition in their language.

The subscriber's `language` attribute (`ar`, `ar-EG`, `EN` ...) picks the edition; readers
without one, or whose language has no edition, get the edition in the publication's default
language (or the original when none is in it). The choice is made in SQL: every edition's send
narrows the segment to its readers, and leaves out anyone a send of another edition of the same
issue already reached, so an issue in several languages still reaches each person once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, false, func, not_, or_, select
from sqlalchemy.sql import ColumnElement

from newsletter.compose.editions import Edition, edition_group
from newsletter.compose.i18n import base_language
from newsletter.compose.publication import Publication
from newsletter.core.errors import NewsletterError
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import subscribers

LANGUAGE_ATTRIBUTE = "language"


def _language() -> ColumnElement:
    return func.lower(subscribers.c.attributes[LANGUAGE_ATTRIBUTE].as_string())


def _speaks(lang: str) -> ColumnElement[bool]:
    code = base_language(lang)
    value = _language()
    return or_(value == code, value.like(f"{code}-%"), value.like(f"{code}\\_%", escape="\\"))


def default_edition(pub: Publication, editions: list[Edition]) -> Edition:
    """The edition for readers with no (or an unserved) language."""
    default = base_language(pub.config.language)
    return next((e for e in editions if base_language(e.language) == default), editions[0])


def reader_condition(edition: Edition, editions: list[Edition], fallback: Edition) -> Any:
    """WHERE clause over `subscribers`: the readers this edition is for."""
    mine = _speaks(edition.language)
    if edition != fallback:
        return mine
    others = [_speaks(e.language) for e in editions if e != fallback]
    return or_(mine, _language().is_(None), not_(or_(false(), *others)))


def not_reached(slugs: list[str], since: dt.datetime | None = None) -> Any:
    """WHERE clause: no send of these slugs (since `since`, if given) reached the subscriber."""
    reached = (
        select(send_recipients.c.id)
        .join(sends, sends.c.id == send_recipients.c.send_id)
        .where(
            sends.c.issue.in_(slugs),
            send_recipients.c.subscriber_id == subscribers.c.id,
            send_recipients.c.state != "failed",
            sends.c.state != "cancelled",
        )
    )
    if since is not None:
        reached = reached.where(sends.c.created_at >= since)
    return not_(exists(reached))


@dataclass
class EditionsPlan:
    """The per-edition send plans of one `send --editions`, and what was left out and why."""

    plans: list[Any]  # SendPlan, one per edition that has readers
    skipped: list[str]


def plan_editions(pub: Publication, issue: str, segment: str | Sequence[str],
                  **options: Any) -> EditionsPlan:
    """Plan one send per edition of ISSUE to the segment(s) (options as for `plan_send`)."""
    from newsletter.dispatch.service import _database, _segment_condition, plan_send

    segments = tuple(dict.fromkeys([segment] if isinstance(segment, str) else segment))
    label = " + ".join(segments)

    slug = pub.issue_dir(issue).name
    editions = edition_group(pub, slug)
    fallback = default_edition(pub, editions)
    slugs = [e.slug for e in editions]
    since = dt.datetime.now(dt.UTC) if options.get("again") else None
    ledger = _database(pub)
    base = _segment_condition(pub, segments)
    plans, skipped = [], []
    for edition in editions:
        narrow = and_(reader_condition(edition, editions, fallback), not_reached(
            [s for s in slugs if s != edition.slug], since))
        history = ledger.sends_for(edition.slug, label)
        resuming = any(s.state in ("sending", "stopped") for s in history)
        done = [s for s in history if s.state == "completed"]
        if done and not resuming and not options.get("again"):
            skipped.append(f"{edition.slug} ({edition.language}) was already sent to "
                           f"'{label}' (send #{done[-1].id}); pass --again to send it again")
            continue
        if not resuming:
            with ledger.engine.connect() as conn:
                count = conn.execute(select(func.count()).select_from(subscribers)
                                     .where(and_(base, narrow))).scalar_one()
            if count == 0:
                skipped.append(f"{edition.slug} ({edition.language}): no readers in "
                               f"'{label}' left for this edition")
                continue
        plans.append(plan_send(pub, edition.slug, segments, narrow=narrow, **options))
    if not plans:
        raise NewsletterError(f"no edition of {slug} has readers left in '{label}'; "
                              + "; ".join(skipped))
    return EditionsPlan(plans, skipped)
