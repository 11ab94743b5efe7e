"""The template context: what the email and text templates see, as typed values.

`template_context()` gathers it from the publication, the loaded issue and its processed images;
the render stage hands it to Jinja (`TemplateContext.for_copy()`: the email copy, or the web
copy with `web` true). Templates read attributes (`issue.pieces`, `piece.expert.name`); the
names below are the template's contract, documented in docs/authoring.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from markupsafe import Markup

from newsletter.compose import bidi, i18n, markdown
from newsletter.compose.editions import edition_group
from newsletter.compose.images import COLUMN_WIDTH, PIECE_WIDTH, IssueImages
from newsletter.compose.links import piece_marker
from newsletter.compose.publication import Publication
from newsletter.compose.schema import PublicationConfig
from newsletter.compose.source import LoadedIssue, Piece, is_remote

TWITTER = "https://twitter.com/"
DESCRIPTION_MAX = 200  # characters of the web copy's description (search results show ~160)
SUBSCRIBE_PATH = "subscribe"  # the sign-up form under public_url (newsletter.web.public)


@dataclass(frozen=True)
class Side:
    """A text direction and the physical sides its lines start and end on."""

    dir: str
    start: str
    end: str

    @classmethod
    def of(cls, direction: str) -> Side:
        if direction == "rtl":
            return cls("rtl", "right", "left")
        return cls("ltr", "left", "right")


class _Sided:
    """`dir`, `start` and `end` from a `side`, as the templates read them."""

    side: Side

    @property
    def dir(self) -> str:
        return self.side.dir

    @property
    def start(self) -> str:
        return self.side.start

    @property
    def end(self) -> str:
        return self.side.end


@dataclass(frozen=True)
class Hero:
    """The issue's lead image, at its published URL and display size."""

    src: str
    alt: str
    credit: str
    width: int
    height: int | None


@dataclass(frozen=True)
class ExpertView:
    """A piece's author as the piece's language names them."""

    name: str
    role: str
    twitter: str | None

    @property
    def twitter_url(self) -> str | None:
        return f"{TWITTER}{self.twitter}" if self.twitter else None


@dataclass(frozen=True)
class PieceView(_Sided):
    """One piece: its words (`t`), direction and both renderings of its body."""

    side: Side
    lang: str
    other: bool  # in another language or direction than the issue
    t: dict[str, str]
    title: str
    title_text: str  # the text part's headline (with direction marks when they are on)
    byline_text: str
    expert: ExpertView
    html: Markup
    text: str
    mark: str = ""  # the direction mark for lines the text template adds


@dataclass(frozen=True)
class EditionLink:
    """A link to another language edition of the issue."""

    slug: str
    lang: str
    dir: str
    url: str
    label: str
    mark: str = ""  # the text part's direction mark for the label, when marks are on


@dataclass(frozen=True)
class IssueView(_Sided):
    """The issue as the templates see it."""

    side: Side
    lang: str
    marks: bool  # the text part carries direction marks (some text is right to left)
    editions: list[EditionLink]
    slug: str
    subject: str
    preheader: str  # hidden preview text (the inbox line after the subject)
    preheader_text: str
    intro_html: Markup  # the optional visible opening paragraph
    intro_text: str
    description: str  # one line for the web copy's description and sharing tags
    date: dt.date
    date_text: str
    hero: Hero | None
    pieces: list[PieceView]
    view_url: str
    subscribe_url: str  # the public sign-up form (`newsletter serve`)

    @property
    def mixed(self) -> bool:
        """Some piece is in another language or direction than the issue."""
        return any(p.other for p in self.pieces)

    @property
    def isolate(self) -> bool:
        """Some part is right to left: the page passes isolate its left-to-right runs."""
        return self.dir == "rtl" or any(p.dir == "rtl" for p in self.pieces)


@dataclass(frozen=True)
class Topic:
    """The one topic a send's segment is defined by (its footer offers to stop it)."""

    tag: str
    label: str


@dataclass(frozen=True)
class TemplateContext:
    """Everything the email and text templates read (`web` and `recipient()` are added per
    copy by the render stage)."""

    pub: PublicationConfig
    t: dict[str, str]
    fonts: dict[str, str]
    issue: IssueView
    footer_html: Markup
    footer_text: str
    topic: Topic | None = None

    def for_copy(self, *, web: bool) -> dict[str, Any]:
        """The names a template sees for the email copy or (`web`) the web copy."""
        return {
            "pub": self.pub,
            "t": self.t,
            "fonts": self.fonts,
            "issue": self.issue,
            "footer_html": self.footer_html,
            "footer_text": self.footer_text,
            "topic": self.topic,
            "web": web,
        }


def figures_for(piece: Piece, images: IssueImages, view_url: str) -> markdown.Figures:
    """Look up a piece's image sources: local ones at their published URL and size."""
    local = {image.ref.src: images.get(image.path) for image in piece.images}

    def figure(src: str) -> markdown.Figure:
        processed = local.get(src)
        if processed is None:
            kind = "Photo" if src.lower().endswith((".jpg", ".jpeg")) else "Chart"
            return markdown.Figure(url=src, width=PIECE_WIDTH, kind=kind)
        return markdown.Figure(
            url=view_url + processed.name,
            width=processed.display_width,
            height=processed.display_height,
            kind=processed.kind,
        )

    return figure


def hero_of(issue: LoadedIssue, images: IssueImages, view_url: str) -> Hero | None:
    """The hero image: a local one at its published URL and processed size."""
    hero = issue.manifest.hero
    if not hero:
        return None
    src, width, height = hero.image, COLUMN_WIDTH, None
    processed = images.get(issue.hero_file)
    if not is_remote(src) and processed is not None:
        src = view_url + processed.name
        width, height = processed.display_width, processed.display_height
    return Hero(src=src, alt=hero.alt, credit=hero.credit, width=width, height=height)


def piece_view(config: PublicationConfig, piece: Piece, number: int, issue_lang: str,
               issue_side: Side, figures: markdown.Figures) -> PieceView:
    """Piece `number` (from 1) in its own language and direction."""
    lang = piece.meta.lang or issue_lang
    side = Side.of(i18n.direction(lang, piece.meta.dir))
    words = i18n.strings(lang, config.strings)
    name, role = piece.expert.words(lang)
    byline_role = f"{words['comma']}{role}" if role else ""
    return PieceView(
        side=side,
        lang=lang,
        other=lang != issue_lang or side.dir != issue_side.dir,
        t=words,
        title=piece.meta.title,
        title_text=piece.meta.title,
        byline_text=f"{words['by']} {name}{byline_role}",
        expert=ExpertView(name=name, role=role, twitter=piece.expert.twitter),
        html=Markup(piece_marker(number, markdown.to_html(piece.body, figures))),
        text=markdown.to_text(piece.body, figures=figures),
    )


def edition_links(pub: Publication, slug: str) -> list[EditionLink]:
    """Links to the issue's other language editions."""
    config = pub.config
    return [
        EditionLink(
            slug=ed.slug,
            lang=ed.language,
            dir=ed.dir,
            url=f"{config.archive_url}{ed.slug}/",
            label=i18n.strings(ed.language, config.strings)["read_in"],
        )
        for ed in edition_group(pub, slug)
        if ed.slug != slug
    ]


def with_marks(pieces: list[PieceView], editions: list[EditionLink]
               ) -> tuple[list[PieceView], list[EditionLink]]:
    """The text part's direction marks: each piece's lines begin with its direction's mark,
    each edition label with its own."""
    marked_pieces = [
        replace(p, mark=bidi.MARKS[p.dir], title_text=bidi.mark_lines(p.title_text, p.dir),
                byline_text=bidi.mark_lines(p.byline_text, p.dir),
                text=bidi.mark_lines(p.text, p.dir))
        for p in pieces
    ]
    return marked_pieces, [replace(e, mark=bidi.MARKS[e.dir]) for e in editions]


def description_of(issue: LoadedIssue, limit: int = DESCRIPTION_MAX) -> str:
    """One line saying what the issue holds: the preheader, else the intro, else the opening of
    the first piece; cut at a word to at most `limit` characters."""
    manifest = issue.manifest
    source = manifest.preheader or manifest.intro
    if not source and issue.pieces:
        first = markdown.paragraphs(issue.pieces[0].body)
        source = first[0] if first else ""
    line = " ".join(markdown.to_text(source).split()) if source else ""
    if len(line) <= limit:
        return line
    return line[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def template_context(pub: Publication, issue: LoadedIssue, topic: str | None = None,
                     images: IssueImages | None = None) -> TemplateContext:
    """The context shared by the HTML and text templates of both copies.

    `topic`: the topic tag a send's segment is defined by; the footer then offers to stop it.
    """
    manifest = issue.manifest
    lang = manifest.language or pub.config.language
    config = pub.config.edition_config(lang)  # the publication's words in this language
    images = images or IssueImages({})
    view_url = f"{config.archive_url}{issue.slug}/"
    side = Side.of(i18n.direction(lang, manifest.dir))
    words = i18n.strings(lang, config.strings)
    pieces = [
        piece_view(config, piece, number, lang, side, figures_for(
            piece, images, f"{config.archive_url}{piece.home}/" if piece.home else view_url))
        for number, piece in enumerate(issue.pieces, start=1)
    ]
    editions = edition_links(pub, issue.slug)
    marks = side.dir == "rtl" or any(p.dir == "rtl" for p in pieces)
    if marks:  # text part: direction marks once any text is right to left
        pieces, editions = with_marks(pieces, editions)
    view = IssueView(
        side=side,
        lang=lang,
        marks=marks,
        editions=editions,
        slug=issue.slug,
        subject=manifest.subject,
        preheader=manifest.preheader,
        preheader_text=markdown.to_text(manifest.preheader) if manifest.preheader else "",
        intro_html=Markup(markdown.to_html(manifest.intro)) if manifest.intro else Markup(""),
        intro_text=markdown.to_text(manifest.intro) if manifest.intro else "",
        description=description_of(issue),
        date=manifest.date,
        date_text=i18n.format_day(manifest.date, lang, words["date_format"], config.digits),
        hero=hero_of(issue, images, view_url),
        pieces=pieces,
        view_url=view_url,
        subscribe_url=f"{config.public_url}{SUBSCRIBE_PATH}",
    )
    return TemplateContext(
        pub=config,
        t=words,
        fonts=i18n.fonts(lang),
        issue=view,
        footer_html=Markup(markdown.to_html(config.footer)),
        footer_text=markdown.to_text(config.footer),
        topic=Topic(topic, config.topics.get(topic, topic)) if topic else None,
    )
