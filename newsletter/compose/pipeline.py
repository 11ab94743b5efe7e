"""The build: a flat list of stages, load -> validate -> render -> inline -> package.

`build_issue()` does all the work in memory; `write_build()` puts the result in dist/<slug>/
atomically. Nothing is written unless every stage succeeded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lxml.html import HtmlElement

from newsletter.compose import bidi, cache, i18n, markdown
from newsletter.compose.images import COLUMN_WIDTH, PIECE_WIDTH, IssueImages, process_issue
from newsletter.compose.inline import inline_tree
from newsletter.compose.links import Link, tag_page, track
from newsletter.compose.package import compose, message_id_for, write_dist
from newsletter.compose.publication import Publication
from newsletter.compose.render import Rendered, render
from newsletter.compose.schema import PublicationConfig
from newsletter.compose.source import LoadedIssue, load_issue
from newsletter.compose.welcome import Welcome, with_welcome
from newsletter.core.errors import FailedError, InputError, Problem
from newsletter.core.html import parse_page, serialise_page
from newsletter.core.personalise import SAMPLE_RECIPIENT, personalise
from newsletter.core.tokens import SAMPLE_SECRET, preferences_url, unsubscribe_url

CSS_CACHE = cache.CACHE / "css"  # the pages' parsed CSS (compose.css)
TEXTS_CACHE = cache.CACHE / "texts"  # what pieces and dates gave (compose.memo)


@dataclass
class Build:
    """A built issue: the parts dispatch personalises, plus the web copy and sample message."""

    issue: LoadedIssue
    config: PublicationConfig  # the publication's settings as this issue's language shows them
    subject: str
    html: str  # email.html: inlined, with %%placeholders%% for per-recipient values
    text: str  # email.txt: with the same placeholders
    web_html: str  # index.html: the web copy, no personal placeholders
    message: bytes  # message.eml: a complete sample message
    assets: dict[str, Path]
    content_hash: str
    warnings: list[Problem] = field(default_factory=list)
    images: IssueImages = field(default_factory=lambda: IssueImages({}))
    links: list[Link] = field(default_factory=list)  # every link of the email, with its piece
    tracked_html: str | None = None  # html with %%link|N%% hrefs, when click tracking is on
    topic: str | None = None  # the topic a send's footer offers to stop (build_issue's `topic`)
    words: int = 0  # in the pieces' paragraphs

    @property
    def slug(self) -> str:
        return self.issue.slug

    @cached_property
    def report(self) -> dict:
        return {
            "slug": self.slug,
            "subject": self.subject,
            "content_hash": self.content_hash,
            "pieces": len(self.issue.pieces),
            "words": self.words,
            "sizes": {name: len(data) for name, data in self.files_without_report().items()},
            "images": {
                p.name: {
                    "width": p.width,
                    "height": p.height,
                    "bytes": p.bytes,
                    "source_width": p.source_width,
                    "source_height": p.source_height,
                    "source_bytes": p.source_bytes,
                }
                for p in self.images.by_source.values()
            },
            "links": [link.as_dict() for link in self.links],
            "warnings": [str(w) for w in self.warnings],
        }

    def files_without_report(self) -> dict[str, bytes]:
        return {
            "email.html": self.html.encode("utf-8"),
            "email.txt": self.text.encode("utf-8"),
            "index.html": self.web_html.encode("utf-8"),
            "message.eml": self.message,
        }

    def files(self) -> dict[str, bytes]:
        files = self.files_without_report()
        files["report.json"] = (
            json.dumps(self.report, indent=2, ensure_ascii=False) + "\n"
        ).encode()
        return files


def content_hash(subject: str, html: str, text: str) -> str:
    """Identifies the content a send delivers; editing the issue changes it."""
    digest = hashlib.sha256()
    for part in (subject, html, text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def build_issue(pub: Publication, issue_ref: str | Path, topic: str | None = None, *,
                welcome: Welcome | None = None) -> Build:
    """Run every stage in memory and return the result (raises InputError on bad input).

    `topic`: for a send to a segment defined by one topic (its footer offers to stop it).
    `welcome`: the welcome message of that day (newsletter.compose.welcome).
    """
    kept = pub.root / TEXTS_CACHE  # Markdown and dates derived before: no markdown-it, Babel
    with markdown.KEPT.kept_in(kept), i18n.DAYS.kept_in(kept):
        issue = load_issue(pub, pub.issue_dir(issue_ref))
        if welcome is not None:
            issue = with_welcome(pub, issue, welcome)
        images = process_images(pub, issue)
        email, web = render(pub, issue, topic, images=images)
        words = sum(len(p.split()) for piece in issue.pieces
                    for p in markdown.paragraphs(piece.body))
    css_cache = pub.root / CSS_CACHE
    page = _page(email, css_cache)
    found = tag_page(page)
    html = serialise_page(page, doctype=email.isolate)
    tracked = None
    if pub.config.tracking.clicks:  # the same inlined page, its links turned into placeholders
        track(found)
        tracked = serialise_page(page, doctype=email.isolate)
    web_html = serialise_page(_page(web, css_cache), doctype=web.isolate)
    subject = issue.manifest.subject
    digest = content_hash(subject, html, email.text)
    config = pub.config.edition_config(issue.manifest.language or pub.config.language)
    message = sample_message(pub, issue, subject, html, email.text, digest, config)
    return Build(
        issue=issue,
        config=config,
        subject=subject,
        html=html,
        text=email.text,
        web_html=web_html,
        message=message,
        assets=images.assets(),
        content_hash=digest,
        warnings=pub.warnings + issue.warnings,
        images=images,
        links=[link for _, link in found],
        tracked_html=tracked,
        topic=topic,
        words=words,
    )


def _page(rendered: Rendered, css_cache: Path | None = None) -> HtmlElement:
    """A copy's compiled HTML parsed once, each paragraph written in the other direction than
    the page given its own `dir`, its left-to-right runs isolated when it has right-to-left
    parts, and its CSS inlined: one lxml tree for every page pass.

    Serialised with a doctype only where the build always had one, on pages with right-to-left
    parts: premailer dropped MJML's lowercase `<!doctype html>`, but kept the uppercase one the
    bidi pass used to write. (Whether every page should have one is a rendering-mode decision
    of its own, left as it was.)
    """
    page = parse_page(rendered.html)
    flipped = bidi.direct_paragraphs(page)  # a paragraph in the other direction gets its own
    if rendered.isolate or flipped:
        bidi.isolate_tree(page)
    inline_tree(page, css_cache)
    return page


def process_images(pub: Publication, issue: LoadedIssue) -> IssueImages:
    """The image stage: every local image of the issue, processed (or taken from the cache)."""
    wanted = []
    manifest = issue.folder / "issue.yaml"
    if issue.hero_file is not None:
        line = issue.source.line_of(("hero", "image"))
        wanted.append((issue.hero_file, COLUMN_WIDTH, manifest, line))
    for piece in issue.pieces:
        for image in piece.images:
            if image.path is not None:
                wanted.append((image.path, PIECE_WIDTH, piece.path, image.line))
    images, problems = process_issue(pub.root, wanted)
    if problems:
        raise InputError(problems)
    return images


def preview_unsubscribe_url(pub: Publication, email: str) -> str:
    """The unsubscribe link shown in sample and preview copies (the sample secret if unset)."""
    return unsubscribe_url(pub.config.public_url, pub.settings.secret or SAMPLE_SECRET, email)


def preview_preferences_url(pub: Publication, email: str) -> str:
    """The preference-page link shown in sample and preview copies (as preview_unsubscribe_url)."""
    return preferences_url(pub.config.public_url, pub.settings.secret or SAMPLE_SECRET, email)


def sample_message(
    pub: Publication, issue: LoadedIssue, subject: str, html: str, text: str, digest: str,
    config: PublicationConfig | None = None,
) -> bytes:
    """The complete message a sample subscriber would receive; pinned Date and Message-ID.

    `config`: the settings as the issue's language shows them (its From name)."""
    recipient = SAMPLE_RECIPIENT
    unsubscribe = preview_unsubscribe_url(pub, recipient.email)
    html_p, text_p = personalise(html, text, recipient, unsubscribe,
                                 preview_preferences_url(pub, recipient.email))
    day = issue.manifest.date
    msg = compose(
        config or pub.config,
        subject=subject,
        html=html_p,
        text=text_p,
        recipient=recipient,
        unsubscribe=unsubscribe,
        message_id=message_id_for(pub.config, issue.slug, "sample", digest[:16]),
        date=dt.datetime(day.year, day.month, day.day, 12, 0, tzinfo=dt.UTC),
        boundary=f"=_{digest[:32]}",
    )
    return msg.as_bytes()


def write_build(pub: Publication, build: Build) -> Path:
    """Write dist/<slug>/ atomically and return its path."""
    target = pub.dist_dir(build.slug)
    try:
        write_dist(target, build.files(), build.assets)
    except OSError as exc:
        raise FailedError(
            f"cannot write {target}: {exc.strerror or exc}; the previous build is unchanged"
        ) from exc
    return target
