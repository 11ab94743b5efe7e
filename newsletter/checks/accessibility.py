"""Accessibility: language, colour contrast, heading order, link text, layout tables."""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.checks import colour
from newsletter.checks.css import declarations, scheme_styles
from newsletter.checks.model import ERROR, WARNING, Context, Finding, excerpt
from newsletter.core.words import plural

MIN_CONTRAST = 4.5  # WCAG 2 AA for body text
DEFAULT_TEXT: colour.RGB = (0.0, 0.0, 0.0)
DEFAULT_LINK: colour.RGB = (0.0, 0.0, 238.0)  # #0000ee, what clients use for unstyled links
DEFAULT_BACKGROUND: colour.RGB = (255.0, 255.0, 255.0)
VAGUE_LINK_TEXT = {"here", "click here", "click", "this link", "link"}
LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_lang(ctx: Context) -> list[Finding]:
    lang = (ctx.doc.get("lang") or "").strip()
    config = str(ctx.pub.root / "newsletter.yaml")
    if not lang or lang.lower() == "und":  # MJML writes "und" (undetermined) when none is set
        return [
            Finding(
                ERROR,
                "accessibility.lang",
                f"the email does not declare its language (<html lang={lang!r}>)",
                "set language: in newsletter.yaml (e.g. en) and keep <mjml lang=...> in the "
                "template",
                file=config,
            )
        ]
    if not LANG.match(lang):
        return [
            Finding(
                WARNING,
                "accessibility.lang",
                f"lang={lang!r} is not a language tag such as en or pt-BR",
                "set language: in newsletter.yaml to a BCP 47 tag",
                file=config,
            )
        ]
    return []


@dataclass
class Pair:
    """A text colour on a background, where it first occurs and how often."""

    fg: colour.RGB
    bg: colour.RGB
    sample: str
    count: int = 1


def _hidden(style: dict[str, str]) -> bool:
    display = style.get("display", "").replace("!important", "").strip()
    return display == "none" or style.get("visibility", "").strip() == "hidden"


SCHEMES = {"light": "", "dark": " in dark mode", "outlook-dark": " in Outlook.com's dark mode"}


def colour_pairs(ctx: Context, scheme: str = "light") -> dict[tuple[str, str], Pair]:
    """Every (text colour, background) combination that visible text is shown in.

    In the "dark" and "outlook-dark" schemes the template's dark-mode rules apply on top of
    the inline styles, by the cascade.
    """
    pairs: dict[tuple[str, str], Pair] = {}
    overrides = scheme_styles(ctx.doc, scheme) if scheme != "light" else {}
    body = ctx.doc.find("body")
    if body is None:
        return pairs

    def record(fg: colour.RGB, bg: colour.RGB, text: str) -> None:
        key = (colour.hex_of(fg), colour.hex_of(bg))
        if key in pairs:
            pairs[key].count += 1
        else:
            pairs[key] = Pair(fg, bg, text)

    def visit(el, fg: colour.RGB, bg: colour.RGB) -> None:
        style = dict(declarations(el.get("style", "")))
        style.update(overrides.get(el, {}))
        if _hidden(style):
            return
        background = None
        if "background-color" in style:
            background = colour.parse(style["background-color"])
        elif "background" in style:
            background = colour.colour_in(style["background"])
        elif el.get("bgcolor"):
            background = colour.parse(el.get("bgcolor", ""))
        if background:
            bg = colour.blend(background, bg)
        text_colour = colour.parse(style["color"]) if "color" in style else None
        if text_colour:
            fg = colour.blend(text_colour, bg)
        elif el.tag == "a":
            fg = DEFAULT_LINK
        if el.text and el.text.strip():
            record(fg, bg, el.text.strip())
        for child in el:
            if isinstance(child.tag, str) and child.tag not in ("style", "script"):
                visit(child, fg, bg)
            if child.tail and child.tail.strip():
                record(fg, bg, child.tail.strip())

    visit(body, DEFAULT_TEXT, DEFAULT_BACKGROUND)
    return pairs


def check_contrast(ctx: Context) -> list[Finding]:
    from newsletter.compose.render import HTML_TEMPLATE, template_dir

    findings = []
    template = template_dir(ctx.pub) / HTML_TEMPLATE
    lines = template.read_text(encoding="utf-8").splitlines() if template.is_file() else []
    for scheme, (fg_hex, bg_hex), pair in _all_pairs(ctx):
        ratio = colour.contrast(pair.fg, pair.bg)
        if ratio >= MIN_CONTRAST:
            continue
        line = next((n for n, text in enumerate(lines, 1) if fg_hex in text.lower()), None)
        times = "once" if pair.count == 1 else f"{pair.count} times"
        where = (
            {"file": str(template), "line": line}
            if line
            else {"part": "html", "excerpt": excerpt(pair.sample, width=50)}
        )
        findings.append(
            Finding(
                ERROR,
                "accessibility.contrast",
                f"text colour {fg_hex} on {bg_hex}{SCHEMES[scheme]} has contrast {ratio:.2f}:1, "
                f"below "
                f"{MIN_CONTRAST}:1 (WCAG AA), used {times}, e.g. "
                f'"{excerpt(pair.sample, width=40)}"',
                "darken the text or lighten the background in the template",
                **where,
            )
        )
    return findings


def _all_pairs(ctx: Context):
    """(scheme, key, pair) for the light scheme and each dark scheme the template styles."""
    for scheme in SCHEMES:
        for key, pair in colour_pairs(ctx, scheme).items():
            yield scheme, key, pair


def check_headings(ctx: Context) -> list[Finding]:
    findings = []
    previous = 0
    for el in ctx.doc.iter("h1", "h2", "h3", "h4", "h5", "h6"):
        level = int(el.tag[1])
        text = " ".join(el.text_content().split())
        if previous == 0 and level != 1:
            problem = f"the first heading is h{level}, not h1"
        elif previous and level > previous + 1:
            problem = f"heading h{level} follows h{previous}, skipping a level"
        else:
            problem = ""
        if problem:
            findings.append(
                ctx.finding(
                    WARNING,
                    "accessibility.headings",
                    f"{problem}: screen-reader users navigate by heading levels",
                    "use the next level down (in a piece, ### under the piece's headline)",
                    needle=text or None,
                    excerpt_text=f"<{el.tag}>{text}</{el.tag}>",
                )
            )
        previous = level
    return findings


def check_link_text(ctx: Context) -> list[Finding]:
    findings = []
    for a in ctx.doc.iter("a"):
        text = " ".join(a.text_content().split())
        alts = [img.get("alt", "").strip() for img in a.iter("img")]
        label = a.get("aria-label", "").strip()
        if not text and not any(alts) and not label:
            findings.append(
                ctx.finding(
                    ERROR,
                    "accessibility.link-text",
                    "a link has no text for screen readers",
                    "give the link text, or its image alt text",
                    needle=a.get("href") or None,
                    excerpt_text=f'<a href="{a.get("href", "")}">',
                )
            )
        elif re.sub(r"[^\w ]", "", text.casefold()).strip() in VAGUE_LINK_TEXT:
            findings.append(
                ctx.finding(
                    WARNING,
                    "accessibility.link-text",
                    f'link text "{text}" says nothing about where it goes',
                    "make the words that are linked describe the destination",
                    needle=f"[{text}]",
                    excerpt_text=f'<a href="{a.get("href", "")}">{text}</a>',
                )
            )
    return findings


def check_tables(ctx: Context) -> list[Finding]:
    count, first = 0, None
    for table in ctx.doc.iter("table"):
        if table.get("role", "").strip().lower() in ("presentation", "none"):
            continue
        if table.find(".//th") is not None or table.find(".//caption") is not None:
            continue  # a data table
        count += 1
        first = first if first is not None else table
    if not count:
        return []
    return [
        Finding(
            ERROR,
            "accessibility.layout-table",
            f'{plural(count, "layout table")} without role="presentation": screen readers '
            "announce their rows and columns",
            'add role="presentation" to layout tables in the template (MJML adds it itself)',
            part="html",
            excerpt=excerpt(
                "<table " + " ".join(f'{k}="{v}"' for k, v in first.attrib.items()) + ">",
                width=70,
            ),
        )
    ]


def check_accessibility(ctx: Context) -> list[Finding]:
    return (
        check_lang(ctx)
        + check_contrast(ctx)
        + check_headings(ctx)
        + check_link_text(ctx)
        + check_tables(ctx)
    )
