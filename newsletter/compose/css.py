"""The inline stage's CSS, parsed once: a <style> block's rules and an element's declarations.

cssutils parses a text the first time it is seen; what the inline stage needs from it (each
rule's selector, its XPath, its order and its declarations; the CSS left in the block) is kept in
memory for the life of the process and, given a cache folder, as JSON under
`.newsletter/cache/css/`, so a new process reads it back without importing cssutils or cssselect.
Entries are keyed by the CSS text and a fingerprint of the code that derived them (this module,
cssutils, cssselect): an edited template or an upgraded parser finds no stale entry, and an
unreadable entry is parsed again.

What is derived is what premailer 3.10 derived from the same text with the options the build
used (`_parse_style_rules`, `_css_rules_to_string`, `csstext_to_pairs`; pseudo-classes and `*`
selectors excluded, `!important` kept, no validation), so pages come out byte for byte as they
did (tests/golden; tests/compose/test_inline_reference.py compares with premailer itself).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from newsletter.compose import cache as stored

FORMAT = 1  # part of every entry's key: bump when what is stored changes
FILTER_PSEUDO = (":last-child", ":first-child", ":nth-child")  # inlined like plain selectors
_ELEMENT = re.compile(r"(^|\s)\w")  # premailer's count of a selector's element names
_SHEETS_KEPT = 64  # distinct style blocks kept in memory (a template has a handful)
_DECLARATIONS_KEPT = 8192  # distinct style attributes kept in memory and in the file

Pairs = tuple[tuple[str, str], ...]  # (property, value) in order, `!important` in the value


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: a key of merged styles
class Rule:
    """One selector of a style rule with the declarations it inlines (important or not)."""

    order: tuple[int, int, int, int, int]  # (important, ids, classes, elements, n-th in block)
    selector: str
    xpath: str  # the selector as XPath (lxml.cssselect's translation)
    declarations: Pairs


@dataclass(frozen=True)
class StyleSheet:
    """A style block: the rules to inline, and the CSS that stays in the block (media queries
    and pseudo-classes, made `!important`) or None when nothing stays and the block goes."""

    rules: tuple[Rule, ...]
    leftover: str | None


_lock = threading.Lock()  # cssutils keeps parser state in module globals
_sheets: dict[str, StyleSheet] = {}
_declarations: dict[str, Pairs] = {}
_in_folder: dict[Path, tuple[set[str], set[str]]] = {}  # the sheets, styles each folder holds


class CssCache:
    """Parsed CSS for one page, from memory, from `folder` (when given) or from cssutils."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._new = False  # declarations the folder's file lacks
        if folder is not None and folder not in _in_folder:
            found = _read_json(folder / _declarations_name())
            kept = _stored_pairs(found) if isinstance(found, dict) else {}
            _declarations.update(kept)
            _in_folder[folder] = (set(), set(kept))

    def sheet(self, css: str) -> StyleSheet:
        """The rules and leftover CSS of a <style> block's text."""
        found = _sheets.get(css)
        if self.folder is not None and css not in _in_folder[self.folder][0]:
            path = self.folder / f"sheet-{_digest(css)}.json"
            kept = _stored_sheet(_read_json(path))
            if kept is None:  # missing or unreadable: (parsed and) written
                found = found or _parse_sheet(css)
                _write_json(path, _sheet_json(found))
            found = found or kept
            _in_folder[self.folder][0].add(css)
        elif found is None:
            found = _parse_sheet(css)
        if len(_sheets) >= _SHEETS_KEPT:
            _sheets.clear()
        _sheets[css] = found
        return found

    def declarations(self, style: str) -> Pairs:
        """The declarations of a style attribute, as premailer merges them."""
        found = _declarations.get(style)
        if found is None:
            with _lock:
                found = _pairs(style)
            if len(_declarations) >= _DECLARATIONS_KEPT:
                _declarations.clear()
            _declarations[style] = found
        if self.folder is not None and style not in _in_folder[self.folder][1]:
            self._new = True
        return found

    def save(self) -> None:
        """Write the declarations parsed for this page into the folder's file."""
        if self.folder is None or not self._new:
            return
        path = self.folder / _declarations_name()
        found = _read_json(path)
        merged = _stored_pairs(found) if isinstance(found, dict) else {}
        if len(merged) + len(_declarations) > _DECLARATIONS_KEPT:
            merged = {}
        merged.update(_declarations)
        _write_json(path, {style: [list(pair) for pair in pairs]
                           for style, pairs in merged.items()})
        _in_folder[self.folder][1].update(merged)
        self._new = False


def forget() -> None:
    """Drop what this process keeps in memory (the files stay): the next page sees only the
    cache folder, as a new process would."""
    _sheets.clear()
    _declarations.clear()
    _in_folder.clear()


@cache
def fingerprint() -> str:
    """The code an entry was derived with: this module, cssutils and cssselect as installed."""
    return f"format {FORMAT}\0" + stored.code_stamp((__file__,), ("cssutils", "cssselect"))


def _digest(text: str) -> str:
    return stored.key(fingerprint(), text)


def _declarations_name() -> str:
    return f"declarations-{_digest('')[:16]}.json"


def _parse_sheet(css: str) -> StyleSheet:
    """Parse a style block with cssutils, as premailer's `_parse_style_rules` did."""
    from lxml.cssselect import LxmlTranslator

    translator = LxmlTranslator()
    rules: list[Rule] = []
    leftover: list[Any] = []  # media rules, and (selector, declarations) of pseudo-classes
    with _lock:
        sheet = _parse_string(css) if css else []
        for rule in sheet:
            if rule.type == rule.MEDIA_RULE:
                leftover.append(rule)
                continue
            if rule.type != rule.STYLE_RULE:
                continue
            properties = list(rule.style.getProperties())
            normal = [p for p in properties if p.priority != "important"]
            important = [p for p in properties if p.priority == "important"]
            bulk = {1: _joined(important), 0: _joined(normal)}
            selectors = (s.strip() for s in rule.selectorText.split(","))
            for selector in selectors:
                if not selector or selector.startswith("@"):
                    continue
                if ":" in selector and ":" + selector.split(":", 1)[1] not in FILTER_PSEUDO:
                    leftover.append((selector, _joined(normal + important)))
                    continue
                if "*" in selector or selector.startswith(":"):
                    continue
                counts = (selector.count("#"), selector.count("."),
                          len(_ELEMENT.findall(selector)))
                for is_important in (1, 0):
                    if bulk[is_important]:
                        rules.append(Rule((is_important, *counts, len(rules)), selector,
                                          translator.css_to_xpath(selector),
                                          _pairs(bulk[is_important])))
        text = _leftover_text(leftover) if leftover else None
    return StyleSheet(tuple(rules), text)


def _parse_string(css: str) -> Any:
    import cssutils

    return cssutils.parseString(css, validate=False)


def _joined(properties: list[Any]) -> str:
    return ";".join(f"{p.name}:{p.value}" + (" !important" if p.priority == "important" else "")
                    for p in properties)


def _pairs(text: str) -> Pairs:
    """(property, value) of each declaration in `text` (premailer's `csstext_to_pairs`)."""
    import cssutils

    return tuple(
        (p.name.strip(), p.propertyValue.cssText.strip()
         + (" !important" if p.priority == "important" else ""))
        for p in cssutils.parseStyle(text, validate=False)
    )


def _leftover_text(items: list[Any]) -> str:
    """The CSS that stays in the block, every declaration `!important` (premailer's
    `_css_rules_to_string`)."""
    from cssutils.css import CSSComment, CSSUnknownRule

    lines = []
    for item in items:
        if isinstance(item, tuple):
            selector, bulk = item
            important = ";".join(p if p.endswith("!important") else f"{p} !important"
                                 for p in bulk.split(";"))
            lines.append(f"{selector} {{{important}}}")
            continue
        for rule in item.cssRules:
            if isinstance(rule, (CSSComment, CSSUnknownRule)):
                continue
            for key in rule.style.keys():
                rule.style[key] = (rule.style.getPropertyValue(key, False), "!important")
        lines.append(item.cssText)
    return "\n".join(lines)


def _sheet_json(sheet: StyleSheet) -> dict:
    return {"rules": [[list(r.order), r.selector, r.xpath, [list(p) for p in r.declarations]]
                      for r in sheet.rules],
            "leftover": sheet.leftover}


def _stored_sheet(data: Any) -> StyleSheet | None:
    """A sheet read back from its file, or None when the file is missing or not one (each
    XPath compiles)."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return None
    leftover = data.get("leftover")
    rules = []
    for item in data["rules"]:
        if not (isinstance(item, list) and len(item) == 4):
            return None
        order, selector, xpath, declarations = item
        if not (isinstance(order, list) and len(order) == 5
                and all(type(n) is int for n in order) and isinstance(selector, str)
                and isinstance(xpath, str) and _is_pairs(declarations)):
            return None
        try:
            compiled(xpath)
        except etree.XPathError:
            return None
        rules.append(Rule(tuple(order), selector, xpath, tuple(map(tuple, declarations))))
    if leftover is not None and not isinstance(leftover, str):
        return None
    return StyleSheet(tuple(rules), leftover)


def _is_pairs(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
        for p in value)


def _stored_pairs(data: dict) -> dict[str, Pairs]:
    return {style: tuple(map(tuple, pairs)) for style, pairs in data.items()
            if isinstance(style, str) and _is_pairs(pairs)}


@lru_cache(maxsize=512)
def compiled(expression: str) -> etree.XPath:
    """A selector's XPath, compiled; `:contains()` needs lxml's CSS function namespace."""
    if "__lxml_internal_css:" in expression:
        import lxml.cssselect  # noqa: F401  (registers the namespace)
    return etree.XPath(expression)


def _read_json(path: Path) -> Any:
    data = stored.read(path)
    try:
        return None if data is None else json.loads(data)
    except ValueError:
        return None


def _write_json(path: Path, data: Any) -> None:
    stored.write(path, json.dumps(data, ensure_ascii=False).encode())
