"""An RSS or Atom feed read with feedparser: its language and its entries, newest first."""

from __future__ import annotations

import calendar
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from newsletter.compose.draft.fetch import Fetcher, FetchError
from newsletter.compose.draft.text import Block, blocks_of_html, plain
from newsletter.core.errors import InputError, Problem


@dataclass(frozen=True)
class Entry:
    """One feed entry: what the drafting needs of it."""

    title: str
    link: str
    authors: tuple[str, ...]
    published: dt.datetime | None  # UTC
    summary: tuple[Block, ...]  # the feed's summary (often a teaser), as blocks of text
    content: tuple[Block, ...]  # the feed's full content, when it carries one

    @property
    def content_complete(self) -> bool:
        """Whether the feed's content is the article itself: present, and not cut short."""
        return bool(self.content) and not _cut_short(self.content[-1].text)


@dataclass(frozen=True)
class Feed:
    url: str
    title: str
    language: str | None
    entries: tuple[Entry, ...]


_ELLIPSES = ("…", "...", "[…]", "[...]", "read more", "continue reading")


def _cut_short(text: str) -> bool:
    tail = text.rstrip().lower()
    return tail.endswith(_ELLIPSES)


def read_feed(fetcher: Fetcher, url: str) -> Feed:
    """Fetch and parse the feed at `url`; InputError when it cannot be read or is no feed."""
    import feedparser

    try:
        page = fetcher.get(url)
    except FetchError as exc:
        raise InputError(Problem(url, None, f"the feed could not be read: {exc.reason}")) from None
    # A stream, never the bytes: feedparser opens a string that looks like a URL or a file name.
    parsed = feedparser.parse(io.BytesIO(page.body), response_headers={
        "content-location": page.url, "content-type": page.content_type or "application/xml"})
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or f"the server sent {page.content_type or 'data'}"
        raise InputError(Problem(url, None, f"this is not an RSS or Atom feed ({reason})"))
    info = parsed.feed
    language = info.get("language") or info.get("title_detail", {}).get("language") or None
    entries = tuple(_entry(raw) for raw in parsed.entries)
    return Feed(page.url, plain(info.get("title", "")), language, entries)


def _text(detail: dict[str, Any] | None, value: str) -> tuple[Block, ...]:
    """A feed text construct as blocks: HTML parsed, plain text taken as it is."""
    if not value:
        return ()
    if detail and "html" not in str(detail.get("type", "html")):
        return tuple(Block("p", plain(part)) for part in value.split("\n\n") if plain(part))
    return tuple(blocks_of_html(value))


def _entry(raw: Any) -> Entry:
    title_detail = raw.get("title_detail") or {}
    title = raw.get("title", "")
    if "html" in str(title_detail.get("type", "")):
        title = " ".join(b.text for b in blocks_of_html(title)) or plain(title)
    names = [a.get("name", "") for a in raw.get("authors", [])] or [raw.get("author", "")]
    authors = tuple(plain(n) for n in names if plain(n) and "@" not in n)  # not a bare address
    stamp = raw.get("published_parsed") or raw.get("updated_parsed")
    published = (dt.datetime.fromtimestamp(calendar.timegm(stamp), dt.UTC) if stamp else None)
    contents = [c for c in raw.get("content", []) if c.get("value")]
    content = _text(contents[0], contents[0]["value"]) if contents else ()
    summary = _text(raw.get("summary_detail"), raw.get("summary", ""))
    return Entry(plain(title), raw.get("link", "").strip(), authors, published, summary, content)


def pick_entries(feed: Feed, since: dt.datetime, pick: int | None) -> tuple[list[Entry],
                                                                              list[Problem]]:
    """The entries published after `since`, newest first, at most `pick`, each link once;
    and a warning for each entry left out for want of a date."""
    dated: list[Entry] = []
    warnings: list[Problem] = []
    seen: set[str] = set()
    for entry in feed.entries:
        if entry.link in seen:
            continue
        seen.add(entry.link)
        if entry.published is None:
            warnings.append(Problem(entry.link or feed.url, None,
                                    f"'{entry.title}' has no date in the feed; left out (every "
                                    "draft would pick it again)", "warning"))
        elif entry.published > since:
            dated.append(entry)
    dated.sort(key=lambda e: e.published or since, reverse=True)
    return dated[:pick] if pick else dated, warnings
