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
from markupsafe import Markup
from mjml import mjml2html

from newsletter.build import markdown
from newsletter.build.links import piece_marker
from newsletter.build.publication import Publication
from newsletter.build.source import LoadedIssue, is_remote
from newsletter.core.errors import InputError, Problem
from newsletter.core.personalise import placeholder

PACKAGED_TEMPLATES = Path(__file__).parents[1] / "templates"
HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
TWITTER = "https://twitter.com/"


@dataclass(frozen=True)
class Rendered:
    """One rendering of an issue: compiled (not yet inlined) HTML and the text part."""

    html: str
    text: str


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


@lru_cache(maxsize=8)
def _environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["mjml.j2", "html.j2"], default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    env.globals["recipient"] = lambda key, fallback="": Markup(placeholder(key, fallback))
    return env


def context(pub: Publication, issue: LoadedIssue) -> dict[str, Any]:
    """The template context shared by the HTML and text templates (`web` is added per copy)."""
    config, manifest = pub.config, issue.manifest
    view_url = f"{config.archive_url}{issue.slug}/"
    hero = None
    if manifest.hero:
        src = manifest.hero.image
        if not is_remote(src) and issue.hero_file is not None:
            src = view_url + issue.hero_file.name
        hero = {"src": src, "alt": manifest.hero.alt, "credit": manifest.hero.credit}
    pieces = []
    for piece in issue.pieces:
        expert = piece.expert
        role = f", {expert.role}" if expert.role else ""
        pieces.append(
            {
                "title": piece.meta.title,
                "title_text": piece.meta.title,
                "byline_text": f"By {expert.name}{role}",
                "expert": {
                    "name": expert.name,
                    "role": expert.role,
                    "twitter": expert.twitter,
                    "twitter_url": f"{TWITTER}{expert.twitter}" if expert.twitter else None,
                },
                "html": Markup(piece_marker(len(pieces) + 1, markdown.to_html(piece.body))),
                "text": markdown.to_text(piece.body),
            }
        )
    return {
        "pub": config,
        "issue": {
            "slug": issue.slug,
            "subject": manifest.subject,
            "preheader": manifest.preheader,
            "preheader_text": markdown.to_text(manifest.preheader) if manifest.preheader else "",
            "date": manifest.date,
            "date_text": date_text(manifest.date),
            "hero": hero,
            "pieces": pieces,
            "view_url": view_url,
        },
        "footer_html": Markup(markdown.to_html(config.footer)),
        "footer_text": markdown.to_text(config.footer),
    }


def date_text(day: dt.date) -> str:
    """A date as people write it: 7 March 2025."""
    return f"{day.day} {day:%B %Y}"


def render(pub: Publication, issue: LoadedIssue) -> tuple[Rendered, Rendered]:
    """Render the email and the web copy (both parts each) from one template context."""
    folder = template_dir(pub)
    env = _environment(folder)
    ctx = context(pub, issue)
    return (
        _render_copy(env, folder, {**ctx, "web": False}),
        _render_copy(env, folder, {**ctx, "web": True}),
    )


def _render_copy(env: jinja2.Environment, folder: Path, ctx: dict[str, Any]) -> Rendered:
    mjml_source = _render_template(env, folder, HTML_TEMPLATE, ctx)
    text = _render_template(env, folder, TEXT_TEMPLATE, ctx)
    try:
        html = mjml2html(mjml_source, disable_comments=True)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise InputError(Problem(folder / HTML_TEMPLATE, None, f"invalid MJML: {exc}")) from exc
    return Rendered(html=html, text=text.strip() + "\n")


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
