"""Inline stage: move CSS from <style> blocks onto elements with premailer, on a parsed page.

The build parses each copy (the email, the web copy) once with lxml; every page pass works on
that tree (bidi isolation before, the image widths and link tagging after) and it is serialised
once (`newsletter.core.html`). Premailer runs on the tree, not on a string, so it neither
re-parses nor serialises.

Premailer re-parses a style block with cssutils on every call and re-serialises each rule's
properties; the template's style blocks are the same on every build, so `_Inliner` keeps the
parsed rules per CSS text for the life of the process (the web copy's inlining, the second of a
build, and every rebuild in the preview find them there), and premailer's own cache of parsed
style attributes and selectors is made large enough to hold a whole page.

Premailer never fetches anything: network and file loading are off and its HTTP session is one
that refuses (`_NoNetwork`), so it is imported without `requests` (`_import_premailer`).

Media queries stay in a <style> block (clients that support them use them). cssutils, which
premailer uses, logs every CSS property it does not know; that noise is silenced here.
premailer copies CSS `height` into a `height` attribute, overwriting the pixel height an image
carries for Outlook with `height="auto"`; that copy is turned off (widths are still copied,
which tables need). An image's fluid `width:100%` would likewise replace its pixel `width`
attribute with "100%"; `image_widths` puts the pixel width (its `max-width`) back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import types
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from lxml.html import HtmlElement

from newsletter.core.html import edit_page

# Premailer memoises the CSS of every style attribute and every selector in one cache of 128
# entries by default; one page has more than that, so a rebuild re-parsed (and validated) the
# ones that fell out. Its documented size setting, read when premailer is imported:
os.environ.setdefault("PREMAILER_CACHE_MAXSIZE", "4096")

import cssutils  # noqa: E402  (after the cache size above)


def _import_premailer() -> type:
    """premailer's Premailer class, imported without loading `requests`.

    premailer imports requests (with urllib3, charset detection, cookies: about a tenth of a
    cold build's imports) only to fetch external stylesheets, which the build never allows: it is
    always given `_NoNetwork` as its session. So while premailer loads, `requests` is a bare
    placeholder module, removed again at once; a later `import requests` anywhere gets the real
    one.
    """
    placeholder = None
    if "requests" not in sys.modules:
        placeholder = sys.modules["requests"] = types.ModuleType("requests")
    try:
        from premailer import Premailer
    finally:
        if placeholder is not None and sys.modules.get("requests") is placeholder:
            del sys.modules["requests"]
    return Premailer


Premailer = _import_premailer()
from premailer import __version__ as premailer_version  # noqa: E402

cssutils.log.setLevel(logging.CRITICAL)
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
# The build asks premailer for no CSS validation (`disable_validation`), but premailer validates
# every style attribute it merges all the same, and cssutils compiles a regular expression per
# property the first time it validates it: most of a cold build's first inlining. Nothing in
# newsletter uses cssutils but premailer, and validation only logs (silenced above), so its
# property profiles are emptied: every property is "unknown", none is checked, output unchanged.
cssutils.profile.removeProfile(all=True)

_RULES_CACHE_SIZE = 64  # distinct style blocks kept (a template has two or three)
RULES_CACHE_VERSION = 1  # part of the stored rules' key: bump when their format changes


class _Leftover(list):
    """The rules premailer leaves in a <style> block (media queries), with their text cached;
    read back from the disk cache, only the text is there."""

    text: str | None = None

    def __bool__(self) -> bool:
        return self.text is not None or len(self) > 0


class _NoNetwork:
    """Premailer's HTTP session: the build never fetches a stylesheet."""

    def get(self, url: str, **_: Any) -> Any:
        raise RuntimeError(f"the build does not fetch {url}")


class _Inliner(Premailer):
    """Premailer that parses each distinct style block once per process, and, given a cache
    folder, once at all: a new process reads the parsed rules back from disk."""

    _rules: ClassVar[dict[tuple[str, int], tuple[tuple, _Leftover]]] = {}
    cache: Path | None = None

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list, list]:
        key = (css_body, ruleset_index)
        cached = self._rules.get(key)
        if cached is None:
            cached = self._read_rules(css_body, ruleset_index)
            if cached is None:
                rules, leftover = super()._parse_style_rules(css_body, ruleset_index)
                cached = (tuple(rules), _Leftover(leftover))
                self._write_rules(css_body, ruleset_index, cached)
            if len(self._rules) >= _RULES_CACHE_SIZE:
                self._rules.clear()
            self._rules[key] = cached
        return list(cached[0]), cached[1]

    def _rules_file(self, css_body: str, ruleset_index: int) -> Path | None:
        if self.cache is None:
            return None
        digest = hashlib.sha256(f"{RULES_CACHE_VERSION}\0{premailer_version}\0{ruleset_index}\0"
                                f"{css_body}".encode()).hexdigest()
        return self.cache / f"{digest[:32]}.json"

    def _read_rules(self, css_body: str, ruleset_index: int) -> tuple[tuple, _Leftover] | None:
        path = self._rules_file(css_body, ruleset_index)
        try:
            stored = json.loads(path.read_text(encoding="utf-8")) if path else None
            if stored is None:
                return None
            rules = tuple((tuple(spec), selector, bulk) for spec, selector, bulk in stored["rules"])
            leftover = _Leftover()
            leftover.text = stored["leftover"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return rules, leftover

    def _write_rules(self, css_body: str, ruleset_index: int,
                     parsed: tuple[tuple, _Leftover]) -> None:
        path = self._rules_file(css_body, ruleset_index)
        if path is None:
            return
        rules, leftover = parsed
        text = self._css_rules_to_string(leftover) if leftover else None
        data = json.dumps({"rules": [list(rule) for rule in rules], "leftover": text})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(data)
            os.replace(tmp, path)
        except OSError:
            pass

    def _style_to_basic_html_attributes(
        self, element: HtmlElement, style_content: str, force: bool = False
    ) -> None:
        """Premailer's own (align, valign, bgcolor, width from the style), worked out once per
        distinct style: most elements of a page share theirs with many others."""
        for key, value in _basic_attributes(style_content):
            if key in element.attrib and not force or key in self.disable_basic_attributes:
                continue
            element.attrib[key] = value

    def _css_rules_to_string(self, rules: list) -> str:
        if not isinstance(rules, _Leftover):
            return super()._css_rules_to_string(rules)
        if rules.text is None:
            rules.text = super()._css_rules_to_string(rules)
        return rules.text


@lru_cache(maxsize=4096)
def _basic_attributes(style_content: str) -> tuple[tuple[str, str], ...]:
    """The HTML attributes premailer derives from a style (its `_style_to_basic_html_attributes`,
    premailer 3.10.0, step by step)."""
    if style_content.count("}") and style_content.count("{") == style_content.count("}"):
        style_content = style_content.split("}")[0][1:]
    attributes: dict[str, str] = {}
    for key, value in [
        x.split(":") for x in style_content.split(";") if len(x.split(":")) == 2
    ]:
        key = key.strip()
        if key == "text-align":
            attributes["align"] = value.strip()
        elif key == "vertical-align":
            attributes["valign"] = value.strip()
        elif key == "background-color" and "transparent" not in value.lower():
            attributes["bgcolor"] = Premailer.six_color(value.strip())
        elif key == "width" or key == "height":
            value = value.strip()
            if value.endswith("px"):
                value = value[:-2]
            attributes[key] = value
    return tuple(attributes.items())


def _inliner(cache: Path | None) -> _Inliner:
    inliner = _Inliner(
        base_url=None,
        allow_network=False,
        allow_loading_external_files=False,
        session=_NoNetwork(),
        remove_classes=False,
        strip_important=False,
        keep_style_tags=False,
        exclude_pseudoclasses=True,
        disable_validation=True,
        disable_basic_attributes=["height"],
        align_floating_images=False,  # done by `image_widths`, without a cssutils parse per image
        cssutils_logging_level=logging.CRITICAL,
    )
    inliner.cache = cache
    return inliner


def inline_tree(doc: HtmlElement, cache: Path | None = None) -> None:
    """Inline the page's CSS in place, then give fluid images back their pixel widths.

    `cache`: a folder where parsed style blocks are kept between processes.
    """
    _inliner(cache).transform(doc)
    image_widths(doc)


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
