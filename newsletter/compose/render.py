"""Render stage: Jinja2 fills the publication's MJML template, mjml-python compiles it to HTML.

The same context renders the plain-text template, so both parts carry the same content.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from newsletter.compose import bidi, i18n, markdown
from newsletter.compose.editions import edition_group
from newsletter.compose.images import COLUMN_WIDTH, PIECE_WIDTH, IssueImages
from newsletter.compose.links import piece_marker
from newsletter.compose.publication import Publication
from newsletter.compose.source import LoadedIssue, Piece, is_remote
from newsletter.core.errors import InputError, Problem
from newsletter.core.personalise import placeholder

PACKAGED_TEMPLATES = Path(__file__).parents[1] / "templates"
HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
TWITTER = "https://twitter.com/"
TEMPLATE_CACHE = Path(".newsletter") / "cache" / "templates"  # compiled templates, per publication


@dataclass(frozen=True)
class Rendered:
    """One rendering of an issue: compiled (not yet inlined) HTML and the text part.

    `mjml` is the template's output the HTML was compiled from; `isolate` says whether the page
    has right-to-left parts, whose left-to-right runs the page passes isolate (bidi).
    """

    html: str
    text: str
    mjml: str = ""
    isolate: bool = False


def template_dir(pub: Publication) -> Path:
    """The publication's own templates/<name>/ if present, else the packaged one."""
    name = pub.config.template
    for base in (pub.root / "templates", PACKAGED_TEMPLATES):
        candidate = base / name
        if (candidate / HTML_TEMPLATE).is_file():
            return candidate
    raise InputError(
        Problem(
            pub.root / "newsletter.yaml",
            None,
            f"template '{name}' not found in templates/{name}/ "
            f"(it needs {HTML_TEMPLATE} and {TEXT_TEMPLATE})",
        )
    )


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates on disk (checked against the template's source by Jinja), so a new
    process does not compile them again; a cache folder that cannot be written is skipped."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@lru_cache(maxsize=8)
def _environment(folder: Path, cache: Path | None = None) -> jinja2.Environment:
    """One Jinja environment per template folder (and compiled-template cache folder)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["mjml.j2", "html.j2"], default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=True,
        bytecode_cache=_BytecodeCache(str(cache)) if cache is not None else None,
    )
    env.globals["recipient"] = lambda key, fallback="": Markup(placeholder(key, fallback))
    env.filters["fill"] = _fill
    return env


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


@jinja2.pass_eval_context
def _fill(eval_ctx: jinja2.nodes.EvalContext, words: str, **values: Any) -> str:
    """A catalogue string with its {fields} filled in (escaped in HTML templates)."""
    if eval_ctx.autoescape:
        out = str(escape(words))
        for key, value in values.items():
            out = out.replace("{" + key + "}", str(escape(value)))
        return Markup(out)
    for key, value in values.items():
        words = words.replace("{" + key + "}", str(value))
    return words


def _side(direction: str) -> dict[str, str]:
    start, end = ("right", "left") if direction == "rtl" else ("left", "right")
    return {"dir": direction, "start": start, "end": end}


def context(
    pub: Publication,
    issue: LoadedIssue,
    topic: str | None = None,
    images: IssueImages | None = None,
) -> dict[str, Any]:
    """The template context shared by the HTML and text templates (`web` is added per copy).

    `topic`: the topic tag a send's segment is defined by; the footer then offers to stop it.
    """
    config, manifest = pub.config, issue.manifest
    images = images or IssueImages({})
    view_url = f"{config.archive_url}{issue.slug}/"
    hero = None
    if manifest.hero:
        src, width, height = manifest.hero.image, COLUMN_WIDTH, None
        processed = images.get(issue.hero_file)
        if not is_remote(src) and processed is not None:
            src, width, height = (
                view_url + processed.name,
                processed.display_width,
                processed.display_height,
            )
        hero = {
            "src": src,
            "alt": manifest.hero.alt,
            "credit": manifest.hero.credit,
            "width": width,
            "height": height,
        }
    lang = manifest.language or config.language
    side = _side(i18n.direction(lang, manifest.dir))
    words = i18n.strings(lang, config.strings)
    marks = side["dir"] == "rtl"  # text part: direction marks once any text is right-to-left
    pieces = []
    for piece in issue.pieces:
        figures = figures_for(piece, images, view_url)
        expert = piece.expert
        piece_lang = piece.meta.lang or lang
        piece_side = _side(i18n.direction(piece_lang, piece.meta.dir))
        piece_words = i18n.strings(piece_lang, config.strings)
        name, role_words = expert.words(piece_lang)
        role = f"{piece_words['comma']}{role_words}" if role_words else ""
        marks = marks or piece_side["dir"] == "rtl"
        pieces.append(
            {
                **piece_side,
                "lang": piece_lang,
                "other": piece_lang != lang or piece_side["dir"] != side["dir"],
                "mark": "",
                "t": piece_words,
                "title": piece.meta.title,
                "title_text": piece.meta.title,
                "byline_text": f"{piece_words['by']} {name}{role}",
                "expert": {
                    "name": name,
                    "role": role_words,
                    "twitter": expert.twitter,
                    "twitter_url": f"{TWITTER}{expert.twitter}" if expert.twitter else None,
                },
                "html": Markup(piece_marker(len(pieces) + 1,
                                            markdown.to_html(piece.body, figures))),
                "text": markdown.to_text(piece.body, figures=figures),
            }
        )
    editions = [
        {
            "slug": ed.slug,
            "lang": ed.language,
            "dir": ed.dir,
            "url": f"{config.archive_url}{ed.slug}/",
            "label": i18n.strings(ed.language, config.strings)["read_in"],
            "mark": "",  # the text part's direction mark for the label, when marks are on
        }
        for ed in edition_group(pub, issue.slug)
        if ed.slug != issue.slug
    ]
    if marks:
        for edition in editions:
            edition["mark"] = bidi.MARKS[edition["dir"]]
        for entry in pieces:
            mark = lambda text, d=entry["dir"]: bidi.mark_lines(text, d)  # noqa: E731
            entry["mark"] = bidi.MARKS[entry["dir"]]  # for lines the text template adds
            entry.update(title_text=mark(entry["title_text"]),
                         byline_text=mark(entry["byline_text"]), text=mark(entry["text"]))
    return {
        "pub": config,
        "t": words,
        "fonts": i18n.fonts(lang),
        "issue": {
            **side,
            "lang": lang,
            "marks": marks,
            "mixed": any(p["other"] for p in pieces),
            "editions": editions,
            "slug": issue.slug,
            "subject": manifest.subject,
            "preheader": manifest.preheader,
            "preheader_text": markdown.to_text(manifest.preheader) if manifest.preheader else "",
            "date": manifest.date,
            "date_text": i18n.format_day(
                manifest.date, lang, words["date_format"], config.digits
            ),
            "hero": hero,
            "pieces": pieces,
            "view_url": view_url,
        },
        "footer_html": Markup(markdown.to_html(config.footer)),
        "footer_text": markdown.to_text(config.footer),
        "topic": {"tag": topic, "label": config.topics.get(topic, topic)} if topic else None,
    }


def date_text(day: dt.date) -> str:
    """A date as people write it: 7 March 2025."""
    return f"{day.day} {day:%B %Y}"


def render(
    pub: Publication,
    issue: LoadedIssue,
    topic: str | None = None,
    images: IssueImages | None = None,
) -> tuple[Rendered, Rendered]:
    """Render the email and the web copy (both parts each) from one template context."""
    folder = template_dir(pub)
    env = _environment(folder, pub.root / TEMPLATE_CACHE)
    ctx = context(pub, issue, topic, images)
    return (
        _render_copy(env, folder, {**ctx, "web": False}),
        _render_copy(env, folder, {**ctx, "web": True}),
    )


def _render_copy(env: jinja2.Environment, folder: Path, ctx: dict[str, Any]) -> Rendered:
    mjml_source = _render_template(env, folder, HTML_TEMPLATE, ctx)
    text = _render_template(env, folder, TEXT_TEMPLATE, ctx).strip() + "\n"
    try:
        html = mjml2html(mjml_source, disable_comments=True)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise InputError(Problem(folder / HTML_TEMPLATE, None, f"invalid MJML: {exc}")) from exc
    issue = ctx["issue"]
    isolate = issue["dir"] == "rtl" or any(p["dir"] == "rtl" for p in issue["pieces"])
    if issue["marks"]:
        text = bidi.mark_lines(text, issue["dir"])  # lines the pieces did not mark already
    return Rendered(html=html, text=text, mjml=mjml_source, isolate=isolate)


def _render_template(env: jinja2.Environment, folder: Path, name: str, ctx: dict) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            Problem(folder / name, exc.lineno, f"template error: {exc.message}")
        ) from exc
    except jinja2.TemplateNotFound as exc:
        raise InputError(Problem(folder / name, None, "template file missing")) from exc
    except jinja2.UndefinedError as exc:
        raise InputError(Problem(folder / name, None, f"template error: {exc.message}")) from exc
