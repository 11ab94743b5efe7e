"""Inline stage: move CSS from <style> blocks onto the elements it styles, on a parsed page.

The build parses each copy (the email, the web copy) once with lxml; every page pass works on
that tree (bidi isolation before, the image widths and link tagging after) and it is serialised
once (`newsletter.core.html`).

This is premailer 3.10's inlining, done on the tree with the CSS parsed once (`compose.css`):
for each <style> block (no `media`, or `all`/`screen`; not `data-premailer="ignore"`) its rules
are applied in order of specificity, then of appearance; each element's declarations are merged,
its own style attribute winning, `unset` values dropped; `text-align`, `vertical-align`,
`background-color` and `width` are copied into the HTML attributes older clients read. What
cannot be inlined (media queries, pseudo-classes) stays in its block, made `!important`; a block
with nothing left goes. Linked stylesheets are left alone: nothing is fetched.

Unlike premailer, CSS `height` is not copied into a `height` attribute (it overwrote the pixel
height an image carries for Outlook with `height="auto"`). An image's fluid `width:100%` would
replace its pixel `width` attribute with "100%"; `image_widths` puts the pixel width (its
`max-width`) back, and gives a floated image the `align` attribute Outlook understands.

premailer itself is no longer used: it re-parsed the template's CSS on every call, validated
every style it merged (most of a cold build's first inlining), loaded `requests`, and offers no
public way to hand it parsed CSS. tests/compose/test_inline_reference.py checks this stage
against premailer on generated pages.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from lxml import etree
from lxml.html import HtmlElement

from newsletter.compose.css import CssCache, Rule, compiled
from newsletter.core.html import edit_page

IGNORE_ATTRIBUTE = "data-premailer"  # `data-premailer="ignore"`: a block kept as it is
_STYLE_BLOCKS = etree.XPath("descendant-or-self::style")
_HEAD = etree.XPath("descendant-or-self::head")
_BODY = etree.XPath("descendant-or-self::body")
Attributes = tuple[tuple[str, str], ...]
_SHORT_COLOR = re.compile(r"^#([0-9a-f])([0-9a-f])([0-9a-f])$", re.IGNORECASE)  # premailer's


def inline_tree(doc: HtmlElement, cache: Path | None = None) -> None:
    """Inline the page's CSS in place, then give fluid images back their pixel widths.

    `cache`: a folder where parsed CSS is kept between processes.
    """
    css = CssCache(cache)
    tree = doc.getroottree()
    _head(tree)
    rules: list[tuple[tuple[int, ...], Rule]] = []
    for index, block in enumerate(_blocks(tree)):
        sheet = css.sheet(block.text or "")
        rules += [((*rule.order[:4], index, rule.order[4]), rule) for rule in sheet.rules]
        if sheet.leftover is not None:
            block.text = sheet.leftover
        else:
            block.getparent().remove(block)
    rules.sort(key=lambda pair: pair[0])
    matched: dict[int, tuple[HtmlElement, list[Rule]]] = {}
    for _, rule in rules:
        for element in compiled(rule.xpath)(tree):
            matched.setdefault(id(element), (element, []))[1].append(rule)
    for element, applied in matched.values():
        style, attributes = _merged(css, tuple(applied), element.get("style", ""))
        if style:
            element.set("style", style)
        for key, value in attributes:
            element.set(key, value)
    css.save()
    image_widths(doc)


_MERGED_KEPT = 4096
_merged_styles: dict[tuple[tuple[Rule, ...], str], tuple[str, Attributes]] = {}


def _merged(css: CssCache, applied: tuple[Rule, ...], own: str) -> tuple[str, Attributes]:
    """An element's style from the rules that match it, in order, then its own style (which
    wins), `unset` values dropped; and the HTML attributes that style gives it (not `height`).
    Elements of a page share a few combinations: each is worked out once."""
    declared = css.declarations(own) if own else ()  # (also noted for the cache folder)
    key = (applied, own)
    found = _merged_styles.get(key)
    if found is None:
        merged: dict[str, str] = {}
        for rule in applied:
            merged.update(rule.declarations)
        merged.update(declared)
        style = "; ".join(f"{k}:{v}" for k, v in merged.items() if v.lower() != "unset").strip()
        found = style, tuple((k, v) for k, v in _basic_attributes(style) if k != "height")
        if len(_merged_styles) >= _MERGED_KEPT:
            _merged_styles.clear()
        _merged_styles[key] = found
    return found


def _head(tree: etree._ElementTree) -> None:
    """Give the page a <head> when it has none (where premailer put the CSS it kept)."""
    if not _HEAD(tree):
        body = _BODY(tree)
        if body:
            body[0].getparent().insert(0, etree.Element("head"))


def _blocks(tree: etree._ElementTree) -> list[HtmlElement]:
    """The <style> blocks to inline, in order (an ignored one loses its marker)."""
    found = []
    for block in _STYLE_BLOCKS(tree):
        media = block.get("media")
        if media and media not in ("all", "screen"):
            continue
        marker = block.get(IGNORE_ATTRIBUTE)
        if marker == "ignore":
            del block.attrib[IGNORE_ATTRIBUTE]
            continue
        if marker:
            warnings.warn(f"Unrecognized {IGNORE_ATTRIBUTE} attribute ({marker!r})",
                          stacklevel=2)
        found.append(block)
    return found


def _basic_attributes(style: str) -> Attributes:
    """The HTML attributes a style gives an element (premailer 3.10's
    `_style_to_basic_html_attributes`, step by step)."""
    if style.count("}") and style.count("{") == style.count("}"):
        style = style.split("}")[0][1:]
    attributes: dict[str, str] = {}
    for key, value in [x.split(":") for x in style.split(";") if len(x.split(":")) == 2]:
        key = key.strip()
        if key == "text-align":
            attributes["align"] = value.strip()
        elif key == "vertical-align":
            attributes["valign"] = value.strip()
        elif key == "background-color" and "transparent" not in value.lower():
            attributes["bgcolor"] = _six_digits(value.strip())
        elif key in ("width", "height"):
            value = value.strip()
            attributes[key] = value.removesuffix("px")
    return tuple(attributes.items())


def _six_digits(color: str) -> str:
    """`#abc` as `#aabbcc` (IBM Notes reads only six digits); anything else as it is."""
    return _SHORT_COLOR.sub(r"#\1\1\2\2\3\3", color)


def inline_css(html: str) -> str:
    """Return `html` (a whole page) with its CSS inlined; placeholders and URLs untouched."""
    return edit_page(html, inline_tree)


def image_widths(doc: HtmlElement) -> None:
    """Give each fluid image (`width:100%; max-width:Npx`) back its pixel width attribute N,
    and a floated image the `align` attribute Outlook understands (as premailer would)."""
    for img in doc.iter("img"):
        style = img.get("style")
        if not style:
            continue
        fluid = img.get("width") == "100%"
        for declaration in style.split(";"):
            name, _, value = declaration.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "max-width" and fluid and value.endswith("px"):
                img.set("width", value.removesuffix("px"))
            elif name == "float" and value.lower() in ("left", "right"):
                img.set("align", value.lower())
