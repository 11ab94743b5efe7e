"""The web archive: `dist/archive/` with each issue's web copy, an index page and an Atom feed.

Every issue in issues/ is built afresh (so the archive never shows a stale dist/), links to the
archive are made relative so the folder works from any static host, and the folder is replaced
atomically: nothing is written unless every issue builds.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html import escape
from pathlib import Path

from lxml import html as lxml_html
from lxml.html import HtmlElement

from newsletter.compose import Build, build_issue, i18n
from newsletter.compose.package import write_dist
from newsletter.compose.publication import Publication, is_message
from newsletter.core.errors import InputError, Problem
from newsletter.web import add_first, asset_templates, edit_page

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class Image:
    """An image as sharing metadata names it: absolute URL, size when known, alt text."""

    url: str
    alt: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Entry:
    """One archived issue as the index and the feed list it."""

    slug: str
    subject: str
    preheader: str
    date: dt.date
    experts: list[str]
    pieces: list[tuple[str, str]]  # (title, expert name)
    language: str = "en"
    hero: Image | None = None  # where the archive publishes the issue's hero image

    @classmethod
    def of(cls, build: Build, default_language: str = "en", archive_url: str = "") -> Entry:
        manifest = build.issue.manifest
        pieces = [(p.meta.title, p.expert.name) for p in build.issue.pieces]
        experts = list(dict.fromkeys(name for _, name in pieces))
        return cls(build.slug, build.subject, manifest.preheader, manifest.date, experts, pieces,
                   manifest.language or default_language, hero_image(build, archive_url))


def hero_image(build: Build, archive_url: str) -> Image | None:
    """The issue's hero as published under `archive_url` (a remote hero: its own URL)."""
    hero = build.issue.manifest.hero
    if hero is None:
        return None
    processed = build.images.get(build.issue.hero_file)
    if processed is not None:
        return Image(f"{archive_url}{build.slug}/{processed.name}", hero.alt,
                     processed.width, processed.height)
    if hero.image.startswith(("https://", "http://")):
        return Image(hero.image, hero.alt)
    return None


@dataclass(frozen=True)
class ArchiveResult:
    folder: Path
    entries: list[Entry]  # every issue, every language, newest first
    by_language: dict[str, list[Entry]]  # language -> its entries (the default one first)


def language_prefix(pub: Publication, language: str) -> str:
    """Where a language's index and feed live in the archive: '' for the default, 'ar/'."""
    return "" if language == pub.config.language else f"{language}/"


def issue_folders(pub: Publication) -> list[Path]:
    """Every issue folder (one holding issue.yaml) under issues/, by name; a message's folder
    (`_welcome`: newsletter.compose.publication.is_message) is no issue of the archive."""
    base = pub.root / "issues"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir()
                  if (p / "issue.yaml").is_file() and not is_message(p.name))


def build_archive(
    pub: Publication, out: Path | None = None, skip: tuple[str, ...] = ()
) -> ArchiveResult:
    """Build every issue (except `skip`) and write the archive to `out` (default dist/archive)."""
    unknown = sorted(set(skip) - {f.name for f in issue_folders(pub)})
    if unknown:
        raise InputError(Problem(pub.root / "issues", None, f"no issue to skip: {unknown[0]}"))
    builds: list[Build] = []
    problems: list[Problem] = []
    for folder in issue_folders(pub):
        if folder.name in skip:
            continue
        try:
            builds.append(build_issue(pub, folder))
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    builds.sort(key=lambda b: (b.issue.manifest.date, b.slug), reverse=True)
    entries = [Entry.of(b, pub.config.language, pub.config.archive_url) for b in builds]
    by_language: dict[str, list[Entry]] = {pub.config.language: []}
    for entry in entries:
        by_language.setdefault(entry.language, []).append(entry)
    files: dict[str, bytes] = {}
    for language, listed in by_language.items():
        prefix = language_prefix(pub, language)
        files[f"{prefix}index.html"] = index_page(
            pub, listed, language, list(by_language)).encode("utf-8")
        files[f"{prefix}feed.xml"] = atom_feed(pub, listed, language)
    copies: dict[str, Path] = {}
    for build, entry in zip(builds, entries, strict=True):
        files[f"{build.slug}/index.html"] = issue_page(pub, build, entry.language).encode("utf-8")
        for name, source in build.assets.items():
            copies[f"{build.slug}/{name}"] = source
    target = out if out is not None else pub.root / "dist" / "archive"
    write_dist(target, files, copies)
    return ArchiveResult(folder=target, entries=entries, by_language=by_language)


def relink(root: HtmlElement, archive_url: str, slug: str) -> None:
    """Make href/src values under `archive_url` relative to the page at <slug>/index.html
    (a <link rel="canonical"> stays absolute: a canonical address is one by definition)."""
    for element in root.iter():
        if element.tag == "link" and "canonical" in (element.get("rel") or "").split():
            continue
        for attr in ("href", "src"):
            url = element.get(attr)
            if url is None or not url.startswith(archive_url):
                continue
            rest = url[len(archive_url) :]
            if rest == slug or rest.startswith(slug + "/"):
                element.set(attr, rest[len(slug) + 1 :] or "./")
            else:
                element.set(attr, "../" + rest)


def relative_links(html: str, archive_url: str, slug: str) -> str:
    """`relink` applied to an HTML fragment."""
    parts = lxml_html.fragments_fromstring(html)
    for part in parts:
        if not isinstance(part, str):
            relink(part, archive_url, slug)
    return "".join(escape(part, quote=False) if isinstance(part, str)
                   else lxml_html.tostring(part, encoding="unicode") for part in parts)


NAV = (
    '<div dir="{dir}" lang="{lang}" style="font:14px/1.4 Helvetica,Arial,sans-serif;'
    'text-align:center;padding:10px 12px;background:#fff;border-bottom:1px solid #d9e2ec">'
    '<a href="../{prefix}" style="color:#2f6fde;text-decoration:none">{back} {all_issues}</a>'
    ' &middot; <a href="../{prefix}feed.xml" style="color:#2f6fde;text-decoration:none">'
    "{feed}</a></div>"
)


def issue_page(pub: Publication, build: Build, language: str | None = None) -> str:
    """The web copy as archived: relative links, a feed link and a way back to the index."""
    language = language or pub.config.language
    words = i18n.strings(language, pub.config.strings)
    prefix = language_prefix(pub, language)
    direction = i18n.direction(language)
    feed = (f'<link rel="alternate" type="application/atom+xml" title="{escape(words["feed"])}" '
            f'href="../{prefix}feed.xml">')
    nav = NAV.format(dir=direction, lang=escape(language), prefix=prefix,
                     back="&rarr;" if direction == "rtl" else "&larr;",
                     all_issues=escape(words["all_issues"]), feed=escape(words["feed"]))

    def edit(doc: HtmlElement) -> None:
        relink(doc, pub.config.archive_url, build.slug)
        doc.find("head").append(lxml_html.fragment_fromstring(feed))
        add_first(doc.find("body"), nav)

    return edit_page(build.web_html, edit)


def index_page(pub: Publication, entries: list[Entry], language: str | None = None,
               languages: list[str] | None = None) -> str:
    """A language's index.html: its issues newest first with subject, date and experts."""
    config = pub.config
    language = language or config.language
    words = i18n.strings(language, config.strings)
    prefix = language_prefix(pub, language)
    others = [
        {"lang": code, "dir": i18n.direction(code), "name": i18n.language_name(code),
         "href": ("../" if prefix else "") + language_prefix(pub, code),
         "url": config.archive_url + language_prefix(pub, code)}
        for code in (languages or []) if code != language
    ]

    def date_text(day: dt.date) -> str:
        return i18n.format_day(day, language, words["date_format"], config.digits)

    template = asset_templates().get_template("archive.html")
    return template.render(config=config, entries=entries, date_text=date_text, t=words,
                           lang=language, dir=i18n.direction(language), others=others,
                           up="../" if prefix else "", share=index_sharing(pub, entries, words,
                                                                         prefix))


def index_sharing(pub: Publication, entries: list[Entry], words: dict[str, str],
                  prefix: str) -> dict:
    """What a language's index tells search engines and link previews: its title, a
    description (the newest issues' subjects), its canonical URL and an image (the newest
    issue's hero)."""
    config = pub.config
    title = f"{config.name} · {words['archive_title']}"
    newest = " · ".join(e.subject for e in entries[:3])
    description = f"{config.name} ({config.publisher}). {words['archive_intro']}"
    if newest:
        description += f": {newest}"
    image = next((e.hero for e in entries if e.hero is not None), None)
    return {"title": title, "description": shorten(description, 200),
            "url": config.archive_url + prefix, "image": image,
            "default_url": config.archive_url}


def shorten(text: str, limit: int) -> str:
    """`text`, cut at a word boundary to at most `limit` characters (with an ellipsis)."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ·:,") + "…"


def _stamp(day: dt.date) -> str:
    return f"{day.isoformat()}T12:00:00Z"


def atom_feed(pub: Publication, entries: list[Entry], language: str | None = None) -> bytes:
    """An Atom 1.0 feed with absolute links; ids are the issues' archive URLs (stable)."""
    config = pub.config
    language = language or config.language
    prefix = language_prefix(pub, language)
    base = config.archive_url
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        element.text = text
        return element

    feed = ET.Element(
        f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": language}
    )
    sub(feed, "title", config.name)
    sub(feed, "id", base + prefix)
    sub(feed, "link", rel="self", type="application/atom+xml", href=f"{base}{prefix}feed.xml")
    sub(feed, "link", rel="alternate", type="text/html", href=base + prefix)
    newest = entries[0].date if entries else dt.datetime.now(dt.UTC).date()
    sub(feed, "updated", _stamp(newest))
    sub(sub(feed, "author"), "name", config.publisher)
    for entry in entries:
        url = f"{base}{entry.slug}/"
        item = sub(feed, "entry")
        sub(item, "title", entry.subject)
        sub(item, "id", url)
        sub(item, "link", rel="alternate", type="text/html", href=url)
        sub(item, "published", _stamp(entry.date))
        sub(item, "updated", _stamp(entry.date))
        for name in entry.experts:
            sub(sub(item, "author"), "name", name)
        if entry.preheader:
            sub(item, "summary", entry.preheader)
        items = "".join(
            f"<li>{escape(title, quote=False)} <em>({escape(name, quote=False)})</em></li>"
            for title, name in entry.pieces
        )
        sub(item, "content", f"<ul>{items}</ul>", type="html")
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"

