"""A small, fast CSS reader: inline `style` declarations and `<style>` block rules.

Only what the checks need: property/value pairs, selectors and at-rule preludes. It tolerates
anything it does not understand (email CSS is full of hacks) rather than failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
