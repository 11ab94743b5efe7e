"""Render stage: Jinja2 fills the publication's MJML template, mjml-python compiles it to HTML.

The same typed context (newsletter.compose.context) renders the plain-text template, so both
parts carry the same content.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from newsletter.compose import bidi
from newsletter.compose.context import TemplateContext, template_context
from newsletter.compose.images import IssueImages
from newsletter.compose.publication import Publication
from newsletter.compose.source import LoadedIssue
from newsletter.core.errors import InputError, Problem
from newsletter.core.personalise import placeholder

PACKAGED_TEMPLATES = Path(__file__).parents[1] / "templates"
HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
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


def render(
    pub: Publication,
    issue: LoadedIssue,
    topic: str | None = None,
    images: IssueImages | None = None,
) -> tuple[Rendered, Rendered]:
    """Render the email and the web copy (both parts each) from one template context."""
    folder = template_dir(pub)
    env = _environment(folder, pub.root / TEMPLATE_CACHE)
    ctx = template_context(pub, issue, topic, images)
    return (_render_copy(env, folder, ctx, web=False), _render_copy(env, folder, ctx, web=True))


class _CharacterReferences(dict):
    """str.translate table: combining marks, format characters (bidi marks, joiners) and
    non-ASCII spaces become numeric character references; everything else stays.

    mjml-python (MRML) writes attribute values with Rust's string escaping, which turns such
    characters into `\\u{651}` (an Arabic shadda in an alt text or a meta description, say);
    as references they pass through, and the page's parser reads them back as characters.
    """

    def __missing__(self, code: int) -> str | int:
        value: str | int = code
        if code > 127 and unicodedata.category(chr(code))[0] in "MCZ":
            value = f"&#x{code:x};"
        self[code] = value
        return value


_MJML_SAFE = _CharacterReferences()


def _render_copy(env: jinja2.Environment, folder: Path, ctx: TemplateContext, *, web: bool
                 ) -> Rendered:
    names = ctx.for_copy(web=web)
    mjml_source = _render_template(env, folder, HTML_TEMPLATE, names)
    text = _render_template(env, folder, TEXT_TEMPLATE, names).strip() + "\n"
    try:
        html = mjml2html(mjml_source.translate(_MJML_SAFE), disable_comments=True)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise InputError(Problem(folder / HTML_TEMPLATE, None, f"invalid MJML: {exc}")) from exc
    if ctx.issue.marks:  # lines the pieces did not mark already; a block in the other
        text = bidi.mark_blocks(text, ctx.issue.dir)  # direction (a footer) gets its own mark
    return Rendered(html=html, text=text, mjml=mjml_source, isolate=ctx.issue.isolate)


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
