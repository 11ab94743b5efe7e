"""Drafting an issue from a feed: the entries since a date become Markdown pieces, the first
one's picture the hero, all written at once into issues/SLUG/. Nothing is sent."""

from __future__ import annotations

import datetime as dt
import io
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from newsletter.compose import i18n
from newsletter.compose.draft.article import Article, NotAnArticle, PageImage, read_article
from newsletter.compose.draft.experts import AuthorMatch, match_author, slugify
from newsletter.compose.draft.feed import Entry, pick_entries, read_feed
from newsletter.compose.draft.fetch import (
    MAX_IMAGE,
    Fetcher,
    FetchError,
    is_private,
    is_web_url,
)
from newsletter.compose.draft.folder import check_not_edited, write_issue_folder
from newsletter.compose.draft.text import Block, markdown_of, opening, plain
from newsletter.compose.fields import check_language
from newsletter.compose.publication import Publication
from newsletter.core.errors import FailedError, InputError, Problem

SUBJECT_TODO = "TK: write the subject line"
ALT_TODO = "TK: describe the picture for readers who cannot see it"
#: The link under each piece, in the languages whose catalogues ship (newsletter/data/strings);
#: others get English unless `feed: {link_text: ...}` says otherwise.
LINK_TEXT = {
    "en": "Read the full commentary",
    "ar": "اقرأ التعليق كاملًا",
    "fa": "متن کامل یادداشت را بخوانید",
    "fr": "Lire le commentaire en entier",
    "he": "לקריאת הפרשנות המלאה",
    "tr": "Yorumun tamamını okuyun",
}
IMAGE_TYPES = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}


@dataclass(frozen=True)
class DraftRequest:
    """What to draft: the feed, the entries since when, how many and how long."""

    feed_url: str
    since: dt.datetime
    pick: int | None = None
    words: int = 150
    language: str | None = None  # the issue's language, whatever the feed says
    fallback_language: str | None = None  # when the feed does not say
    subject: str = ""
    timeout: float = 10.0
    force: bool = False
    link_text: str | None = None


@dataclass(frozen=True)
class DraftedPiece:
    path: str  # relative to the issue folder
    title: str
    url: str
    expert: str | None  # None: the author is not in the registry (see the warnings)
    source: str  # "the page", "the feed's content" or "the feed's summary"


@dataclass
class Draft:
    folder: Path
    feed_title: str
    language: str
    pieces: list[DraftedPiece]
    hero: str | None
    warnings: list[Problem] = field(default_factory=list)
    kept: Path | None = None  # where an edited folder it replaced was kept


@dataclass
class _Piece:
    entry: Entry
    blocks: list[Block]
    source: str
    match: AuthorMatch | None
    article: Article | None


def draft_issue(pub: Publication, slug: str, request: DraftRequest) -> Draft:
    """Draft issues/SLUG/ from `request.feed_url`; raise InputError for a bad slug, feed or an
    edited folder (before any request), FailedError when no entry is left to draft."""
    from newsletter.compose.scaffold import SLUG

    if not SLUG.match(slug):
        raise InputError(f"'{slug}' is not a usable slug: use lowercase letters, digits and dashes")
    check_not_edited(pub.root, slug, request.force)
    folder = pub.root / "issues" / slug
    warnings: list[Problem] = []
    public = not is_private(request.feed_url)  # then so must be every page it links to
    with Fetcher(timeout=request.timeout, public_only=public) as fetcher:
        feed = read_feed(fetcher, request.feed_url)
        entries, left_out = pick_entries(feed, request.since, request.pick)
        warnings += left_out
        wanted = request.language or feed.language or request.fallback_language
        language = _language(pub, wanted, feed.url, warnings)
        pieces: list[_Piece] = []
        for entry in entries:
            piece = _piece(pub, entry, fetcher, request.words, warnings, hero=not pieces)
            if piece is not None:
                pieces.append(piece)
        if not pieces:
            when = f"{request.since.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
            raise FailedError(f"{feed.url}: no entry to draft since {when} "
                              f"({len(feed.entries)} in the feed); nothing written")
        image = pieces[0].article.image if pieces[0].article else None
        hero = _hero(fetcher, image, pieces[0].entry.link, warnings) if image else None
    if image is None:
        why = ("names no picture (og:image)" if pieces[0].article else "was not read")
        warnings.append(Problem(pieces[0].entry.link, None, f"the first entry's page {why}: "
                                "the draft has no hero", "warning"))
    files, drafted = _files(pub, slug, request, language, pieces, hero, folder, warnings)
    about = {"feed": feed.url, "drafted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    kept = write_issue_folder(pub.root, slug, files, force=request.force, about=about)
    return Draft(folder, feed.title, language, drafted, hero and hero[0], warnings, kept)


def _language(pub: Publication, wanted: str | None, where: str, warnings: list[Problem]) -> str:
    """The issue's language tag: `wanted` when it is a language tag, else the publication's."""
    if wanted:
        try:
            tag = check_language(wanted.strip().replace("_", "-"))
        except ValueError:
            warnings.append(Problem(where, None, f"'{wanted}' is not a language tag; the issue "
                                                 f"is in {pub.config.language}", "warning"))
        else:
            base, _, region = (tag or "").partition("-")
            return base.lower() + (f"-{region.upper()}" if len(region) == 2 else
                                   f"-{region}" if region else "")
    return pub.config.language


def _piece(pub: Publication, entry: Entry, fetcher: Fetcher, words: int,
           warnings: list[Problem], *, hero: bool) -> _Piece | None:
    """The text and author of one entry, from its page or the feed; None (with a warning) when
    it is left out."""

    def warn(message: str) -> None:
        warnings.append(Problem(entry.link or "(no link)", None, message, "warning"))

    if not is_web_url(entry.link):
        warn(f"'{entry.title}': its link is not an http(s) URL; left out")
        return None
    article, reason = None, ""
    if hero or not entry.content_complete or not entry.authors:
        try:
            article = read_article(fetcher.get(entry.link))
        except FetchError as exc:
            if exc.kind == "status":
                warn(f"'{entry.title}': {exc.reason}; left out")
                return None
            reason = exc.reason
        except NotAnArticle as exc:
            reason = str(exc)
    if entry.content_complete:
        blocks, source = list(entry.content), "the feed's content"
    elif article is not None:
        blocks, source = list(article.blocks), "the page"
    elif entry.content or entry.summary:
        blocks, source = list(entry.content or entry.summary), "the feed's summary"
        warn(f"'{entry.title}': the page was not read ({reason}); the piece starts with the "
             "feed's summary instead")
    else:
        warn(f"'{entry.title}': the page was not read ({reason}) and the feed has no text for "
             "it; left out")
        return None
    authors = entry.authors or (article.authors if article else ())
    matches = [match_author(name, pub.config.experts) for name in authors]
    found = [m for m in matches if m.expert]
    match = found[0] if found else (matches[0] if matches else None)
    if len(found) > 1:
        others = ", ".join(m.expert or "" for m in found[1:])
        warn(f"'{entry.title}' has {len(found)} authors; the byline is {found[0].expert} "
             f"(also: {others})")
    return _Piece(entry, opening(blocks, words), source, match, article)


def _hero(fetcher: Fetcher, image: PageImage, page: str,
          warnings: list[Problem]) -> tuple[str, bytes, PageImage] | None:
    """(file name, bytes, what the page says of it) of the hero picture, downloaded once and
    checked to be a JPEG, PNG, GIF or WebP image; None with a warning otherwise."""
    from PIL import Image

    try:
        data = fetcher.get(image.url, max_bytes=MAX_IMAGE).body
        with Image.open(io.BytesIO(data)) as opened:
            kind = opened.format or ""
            opened.verify()
    except FetchError as exc:
        reason = exc.reason
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = f"not an image that can be read ({exc})"
    else:
        if kind in IMAGE_TYPES:
            return f"hero.{IMAGE_TYPES[kind]}", data, image
        reason = f"a {kind or 'unknown'} image, not JPEG, PNG, GIF or WebP"
    warnings.append(Problem(page, None, f"the picture {image.url} was not used as the hero: "
                                        f"{reason}", "warning"))
    return None


def _link(url: str) -> str:
    """The article's address without utm_ tracking parameters, safe inside Markdown (...)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_")]
    clean = parts._replace(query=urllib.parse.urlencode(query)).geturl()
    return urllib.parse.quote(clean, safe=":/?#@!$&'*+,;=%~[]").replace("(", "%28").replace(
        ")", "%29")


def _expert_line(pub: Publication, piece: _Piece, title: str, warnings: list[Problem],
                 where: Path) -> str:
    """The `expert:` line of a piece; an author not in the registry gets an id that is not
    there either, so `build` and `check` stop until the editor settles it."""
    match = piece.match
    if match is None:
        warnings.append(Problem(where, 3, f"'{title}': the feed and the page name no author; "
                                          "set expert: to an id from newsletter.yaml", "warning"))
        return "expert: TK  # no author on the site: set an expert id from newsletter.yaml\n"
    if match.expert:
        return f"expert: {match.expert}\n"
    closest = ", ".join(match.closest) or "none close"
    what = ("matches more than one expert" if match.how == "ambiguous"
            else "is not in the experts registry")
    warnings.append(Problem(where, 3, f"'{title}': author '{match.author}' {what} (closest: "
                                      f"{closest}); set expert: to the right id, or add the "
                                      "author to experts: in newsletter.yaml", "warning"))
    new_id = slugify(match.author)
    if not new_id or new_id in pub.config.experts:
        new_id = "TK"  # never an id that exists: that would be a guess
    author = match.author.replace("\n", " ")
    return f"expert: {new_id}  # author on the site: {author}; closest experts: {closest}\n"


def _file_name(entry: Entry, title: str, taken: set[str], number: int) -> str:
    """pieces/NAME.md from the article's address (or title), unique within the issue."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(entry.link).path).rstrip("/")
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0] if path else ""
    name = slugify(stem, 60) or slugify(title, 60) or f"piece-{number}"
    unique, count = name, 2
    while unique in taken:
        unique, count = f"{name}-{count}", count + 1
    taken.add(unique)
    return f"pieces/{unique}.md"


def _piece_text(pub: Publication, piece: _Piece, title: str, language: str, link_text: str,
                warnings: list[Problem], where: Path) -> str:
    front = yaml.safe_dump({"title": title}, allow_unicode=True, width=1000)
    front += _expert_line(pub, piece, title, warnings, where)
    own = piece.article.language if piece.article else None
    if own and i18n.base_language(own) != i18n.base_language(language):
        try:
            front += f"lang: {check_language(own)}\n"
        except ValueError:
            pass
    link = f"[{link_text}]({_link(piece.entry.link)})"
    return f"---\n{front}---\n\n{markdown_of(piece.blocks)}\n\n{link}\n"


def _date(slug: str) -> dt.date:
    try:
        return dt.date.fromisoformat(slug[:10])
    except ValueError:
        return dt.date.today()


def _files(pub: Publication, slug: str, request: DraftRequest, language: str,
           pieces: list[_Piece], hero: tuple[str, bytes, PageImage] | None, folder: Path,
           warnings: list[Problem]) -> tuple[dict[str, bytes], list[DraftedPiece]]:
    """The issue's files (relative path -> bytes) and what each piece is."""
    words = i18n.strings(language, pub.config.strings)
    link_text = request.link_text or LINK_TEXT.get(i18n.base_language(language), LINK_TEXT["en"])
    files: dict[str, bytes] = {}
    drafted: list[DraftedPiece] = []
    taken: set[str] = set()
    names: list[str] = []
    for number, piece in enumerate(pieces, 1):
        title = piece.entry.title or (piece.article.title if piece.article else "")
        if not title:
            title = "TK: headline"
            warnings.append(Problem(piece.entry.link, None, "the entry has no title", "warning"))
        path = _file_name(piece.entry, title, taken, number)
        text = _piece_text(pub, piece, title, language, link_text, warnings, folder / path)
        files[path] = text.encode("utf-8")
        expert = piece.match.expert if piece.match else None
        drafted.append(DraftedPiece(path, title, piece.entry.link, expert, piece.source))
        if expert:
            names.append(pub.config.experts[expert].words(language)[0])
    manifest: dict[str, object] = {
        "subject": request.subject or SUBJECT_TODO,
        "preheader": words["with_experts"].replace("{experts}", words["comma"].join(
            dict.fromkeys(names))) if names else "",
        "date": _date(slug),
    }
    if i18n.base_language(language) != i18n.base_language(pub.config.language):
        manifest["language"] = language
    if hero is not None:
        name, data, image = hero
        files[name] = data
        manifest["hero"] = {"image": name, "alt": image.alt or ALT_TODO,
                            **({"credit": image.credit} if image.credit else {})}
        if not image.alt:
            warnings.append(Problem(folder / "issue.yaml", None, "the hero picture has no alt "
                                    "text on its page (og:image:alt): write hero.alt", "warning"))
    manifest["pieces"] = [d.path for d in drafted]
    since = f"{request.since.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    head = (f"# Drafted by `newsletter new --from-feed` from {plain(request.feed_url)}\n"
            f"# ({len(drafted)} entries published after {since}). Write the subject, then edit "
            "freely.\n")
    body = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=1000)
    files["issue.yaml"] = (head + body).encode("utf-8")
    return files, drafted
