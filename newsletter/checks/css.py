"""A small, fast CSS reader: inline `style` declarations and `<style>` block rules.

Only what the checks need: property/value pairs, selectors and at-rule preludes. It tolerates
anything it does not understand (email CSS is full of hacks) rather than failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

COMMENT = re.compile(r"/\*.*?\*/", re.S)


@dataclass
class Rule:
    """A style rule: its selector text, declarations and the at-rules it sits inside."""

    selector: str
    declarations: list[tuple[str, str]]
    at_rules: list[str] = field(default_factory=list)  # e.g. ["@media screen and (...)"]


@dataclass
class Sheet:
    """A parsed `<style>` block."""

    rules: list[Rule]
    at_rules: list[str]  # every at-rule prelude met, e.g. "@media only screen and (...)"


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def declarations(style: str) -> list[tuple[str, str]]:
    """`color: red; margin:0` -> [("color", "red"), ("margin", "0")], names lower-cased."""
    out = []
    for chunk in _split_top(COMMENT.sub("", style), ";"):
        name, sep, value = chunk.partition(":")
        name = name.strip().lower()
        if sep and name and re.fullmatch(r"-?[a-z][a-z0-9-]*|--[\w-]+", name):
            out.append((name, value.strip()))
    return out


def parse_sheet(text: str) -> Sheet:
    """Parse a style block into rules (nested at-rules flattened) and at-rule preludes."""
    sheet = Sheet(rules=[], at_rules=[])
    _parse_block(COMMENT.sub("", text), [], sheet)
    return sheet


def _parse_block(text: str, context: list[str], sheet: Sheet) -> None:
    pos = 0
    while pos < len(text):
        brace = text.find("{", pos)
        semi = text.find(";", pos)
        if semi != -1 and (brace == -1 or semi < brace):  # statement at-rule: @import ...;
            prelude = text[pos:semi].strip()
            if prelude.startswith("@"):
                sheet.at_rules.append(prelude)
                sheet.rules.append(Rule(" ".join(prelude.split()), [], list(context)))
            pos = semi + 1
            continue
        if brace == -1:
            return
        prelude = text[pos:brace].strip()
        end = _matching(text, brace)
        body = text[brace + 1 : end]
        if prelude.startswith("@"):
            sheet.at_rules.append(" ".join(prelude.split()))
            if prelude.lower().startswith(("@media", "@supports", "@document", "@layer")):
                _parse_block(body, [*context, " ".join(prelude.split())], sheet)
            elif prelude.lower().startswith(("@font-face", "@page")):
                sheet.rules.append(Rule(prelude, declarations(body), list(context)))
        elif prelude:
            sheet.rules.append(Rule(" ".join(prelude.split()), declarations(body), list(context)))
        pos = end + 1


def _matching(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


# -- rules in the built document ------------------------------------------------------------

# Declarations that only tell a client what the email supports: ignoring them leaves the
# inlined (light) rendering, which is the baseline every client gets anyway.
HINT_PROPERTIES = {"color-scheme", "supported-color-schemes"}
DARK_MEDIA = "prefers-color-scheme: dark"
OUTLOOK_DARK_HOOKS = ("[data-ogsc]", "[data-ogsb]")  # attributes Outlook.com adds in dark mode


@dataclass
class DocRule:
    """A rule of a `<style>` block of a document, with what it would apply to."""

    rule: Rule
    conditional: bool  # inside a media query with a condition (or a <style media=...> block)
    order: int


def document_rules(doc) -> list[DocRule]:
    """Every rule in the `<style>` blocks of an lxml document, in source order."""
    found: list[DocRule] = []
    for style in doc.iter("style"):
        media = (style.get("media") or "").strip()
        for rule in parse_sheet(style.text or "").rules:
            conditional = "(" in media or any(
                at.lower().startswith("@media") and "(" in at for at in rule.at_rules
            )
            found.append(DocRule(rule, conditional, len(found)))
    return found


@lru_cache(maxsize=512)
def _compiled(selector: str):
    """(compiled lxml selector, specificity) for each part of a selector list; None if unknown."""
    from cssselect import SelectorError, parse
    from lxml.cssselect import CSSSelector

    try:
        return tuple((CSSSelector(part.strip()), parse(part)[0].specificity())
                     for part in _split_top(selector, ","))
    except (SelectorError, ValueError, IndexError):
        return None


def select(doc, selector: str) -> list[tuple[object, tuple[int, int, int]]] | None:
    """(element, specificity) for each element `selector` matches; None if it cannot be read."""
    compiled = _compiled(selector)
    if compiled is None:
        return None
    return [(el, spec) for sel, spec in compiled for el in sel(doc)]


def is_enhancement(doc, item: DocRule) -> bool:
    """True when a client that ignores this rule still shows the email as intended.

    - a rule inside a media query with a condition: ignoring it is the same as the condition
      being false (a desktop window, a light scheme), which the email must handle anyway;
    - a rule that only declares colour-scheme hints;
    - a rule that matches nothing in the email as built (hooks such as Outlook.com's
      [data-ogsc], which only that client adds).
    Anything else (a rule that applies to elements but was left out of the inlined styles) is
    not an enhancement: clients that drop <style> blocks lose it.
    """
    if item.conditional:
        return True
    decls = item.rule.declarations
    if decls and all(name in HINT_PROPERTIES for name, _ in decls):
        return True
    if item.rule.selector.startswith("@"):
        return False
    matched = select(doc, item.rule.selector)
    return matched is not None and not matched


def scheme_styles(doc, scheme: str) -> dict[object, dict[str, str]]:
    """What the `<style>` blocks change per element in a colour scheme, by the cascade.

    `scheme` is "dark" (rules under prefers-color-scheme: dark) or "outlook-dark" (rules
    behind Outlook.com's [data-ogsc]/[data-ogsb] hooks, as Outlook.com applies them).
    !important declarations override inline styles; others apply where no inline value is set.
    """
    applied: list[tuple[tuple, object, str, str, bool]] = []
    for item in document_rules(doc):
        rule = item.rule
        if scheme == "dark":
            if not any(DARK_MEDIA in " ".join(at.lower().split()) for at in rule.at_rules):
                continue
            selector = rule.selector
        else:
            if rule.at_rules:
                continue
            parts = [p.strip() for p in _split_top(rule.selector, ",")]
            hooked = [p for p in parts if p.startswith(OUTLOOK_DARK_HOOKS)]
            if not hooked:
                continue
            selector = ", ".join(p.split("]", 1)[1].strip() for p in hooked)
        matched = select(doc, selector) if selector else None
        for el, spec in matched or []:
            for name, value in rule.declarations:
                important = "!important" in value.replace(" ", "")
                key = (important, spec, item.order)
                applied.append((key, el, name, value.replace("!important", "").strip(), important))
    out: dict[object, dict[str, str]] = {}
    inline_cache: dict[object, set[str]] = {}
    for _key, el, name, value, important in sorted(applied, key=lambda a: a[0]):
        if not important:
            inline = inline_cache.setdefault(
                el, {n for n, _ in declarations(el.get("style", ""))}
            )
            if name in inline:
                continue
        out.setdefault(el, {})[name] = value
    return out
