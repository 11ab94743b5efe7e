"""The welcome message as it is sent: its own folder (`issues/_welcome/`, an issue like any
other, with its editions) dated the day it goes out, and, as `welcome: {latest: ...}` asks, a
line linking to the latest sent issue or that issue's pieces after its own.

The folder itself is what `check`, `preview`, `approve` and `publish` see; `build_issue(...,
welcome=Welcome(...))` makes the message of one day. The latest issue's pieces keep their own
web copy as the home of their images, so the images they show are those that issue published.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

from newsletter.compose import i18n
from newsletter.compose.publication import Publication, is_message
from newsletter.compose.source import LoadedIssue, load_issue
from newsletter.core.errors import InputError

#: Markdown's punctuation that a subject must not turn into markup inside a link text
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


@dataclass(frozen=True)
class Latest:
    """The latest sent issue (the edition in the welcome's language, where there is one)."""

    slug: str
    subject: str
    whole: bool = False  # its pieces follow the welcome's own (else a link only)


@dataclass(frozen=True)
class Welcome:
    """What makes the welcome of one day: the day it is dated, and the latest issue."""

    day: dt.date
    latest: Latest | None = None


def linked(subject: str, url: str) -> str:
    """A Markdown link to `url` whose text is `subject`, word for word."""
    text = _MARKUP.sub(r"\\\1", subject)
    return f"[{text}](<{url}>)"


def with_welcome(pub: Publication, issue: LoadedIssue, welcome: Welcome) -> LoadedIssue:
    """`issue` dated `welcome.day`, with the line about the latest issue after its intro and,
    for the whole issue, that issue's pieces after its own. A latest issue whose folder cannot
    be read now is only linked."""
    manifest = issue.manifest
    lang = manifest.language or pub.config.language
    assert is_message(issue.slug), issue.slug
    pieces = list(issue.pieces)
    intro = manifest.intro
    latest = welcome.latest
    if latest is not None:
        words = i18n.strings(lang, pub.config.strings)
        link = linked(latest.subject, f"{pub.config.archive_url}{latest.slug}/")
        key = "latest_link"
        if latest.whole:
            try:
                carried = load_issue(pub, pub.issue_dir(latest.slug))
            except InputError:
                carried = None
            if carried is not None:  # each piece keeps its issue's language and web copy
                key = "latest_below"
                own = carried.manifest.language or pub.config.language
                pieces += [dataclasses.replace(p, home=latest.slug, meta=p.meta.model_copy(
                    update={"lang": p.meta.lang or own})) for p in carried.pieces]
        line = words[key].replace("{issue}", link)
        intro = f"{intro}\n\n{line}" if intro else line
    return dataclasses.replace(
        issue, manifest=manifest.model_copy(update={"date": welcome.day, "intro": intro}),
        pieces=pieces)
