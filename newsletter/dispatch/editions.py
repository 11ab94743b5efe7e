"""`send ISSUE --segment NAME --editions`: each reader gets the edition in their language.

The subscriber's `language` attribute (`ar`, `ar-EG`, `EN` ...) picks the edition; readers
without one, or whose language has no edition, get the edition in the publication's default
language (or the original when none is in it). The choice is made in SQL: every edition's send
narrows the segment to its readers, and like any send leaves out whoever the issue family
reached (dispatch.ledger.reached), so an issue in several languages reaches each person once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, func, not_, or_, select

from newsletter.audience.preferences import LANGUAGE_ATTRIBUTE
from newsletter.compose.editions import Edition, edition_group
from newsletter.compose.i18n import base_language
from newsletter.compose.publication import Publication
from newsletter.core.errors import NewsletterError
from newsletter.db.tables import subscribers
from newsletter.dispatch.ledger.reached import recipients_of
from newsletter.dispatch.options import DEFAULTS, SendOptions
from newsletter.dispatch.plan import family_of, open_ledger, plan_send, segment_condition
from newsletter.dispatch.send_plan import SendPlan


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


def _readable(pub: Publication, slugs: list[str]) -> None:
    """Editions the ledger knows (an earlier send named them) that the files no longer list:
    one whose manifest cannot be read is an error (InputError, naming the file and line),
    rather than an edition silently left out; one whose folder is gone is no edition now."""
    from newsletter.compose.source import load_issue
    from newsletter.core.errors import InputError

    for slug in slugs:
        try:
            folder = pub.issue_dir(slug)
        except InputError:
            continue
        load_issue(pub, folder)


@dataclass
class EditionsPlan:
    """The per-edition send plans of one `send --editions`, and what was left out and why."""

    plans: list[SendPlan]  # one per edition that has readers
    skipped: list[str]


def plan_editions(pub: Publication, issue: str, segment: str | Sequence[str],
                  options: SendOptions = DEFAULTS, *,
                  before_send: Callable[[Publication, Any, str], str] | None = None
                  ) -> EditionsPlan:
    """Plan one send per edition of ISSUE to the segment(s) (`options` and `before_send` as
    for `plan_send`).

    With --retry-failed, each edition whose last completed send to the segments has failed
    recipients is reopened; with --again every reader gets their edition once more (one
    edition each: those an edition reached in this run are left out of the others)."""
    segments = tuple(dict.fromkeys([segment] if isinstance(segment, str) else segment))
    label = " + ".join(segments)
    slug = pub.issue_dir(issue).name
    editions = edition_group(pub, slug)
    ledger = open_ledger(pub)
    family = family_of(pub, slug, ledger)
    _readable(pub, [s for s in family if s not in {e.slug for e in editions}])
    fallback = default_edition(pub, editions)
    again, retry_failed = options.again, options.retry_failed
    started = dt.datetime.now(dt.UTC)
    base = segment_condition(pub, segments)
    plans, skipped = [], []
    for edition in editions:
        narrow = reader_condition(edition, editions, fallback)
        history = ledger.sends.of_issue(edition.slug, label)
        resuming = any(s.state in ("sending", "stopped") for s in history)
        if retry_failed and not resuming and not any(
                s.state == "completed" and s.failed for s in history):
            skipped.append(f"{edition.slug} ({edition.language}): no failed recipients to "
                           f"retry in '{label}'")
            continue
        if not resuming and not retry_failed:
            with ledger.engine.connect() as conn:
                chosen = recipients_of(conn, family, base & narrow,
                                       "again" if again else "once", started if again else None)
                count = conn.execute(select(func.count()).select_from(subscribers)
                                     .where(chosen)).scalar_one()
            if count == 0:
                done = [s for s in history if s.state == "completed"]
                skipped.append(f"{edition.slug} ({edition.language}) " + (
                    f"was already sent to '{label}' (send #{done[-1].id}); pass --again to "
                    "send it again" if done else f"has no readers left in '{label}'"))
                continue
        plans.append(plan_send(pub, edition.slug, segments, options, before_send=before_send,
                               narrow=narrow, run_started=started))
    if not plans:
        raise NewsletterError(f"no edition of {slug} has readers left in '{label}'; "
                              + "; ".join(skipped))
    return EditionsPlan(plans, skipped)
