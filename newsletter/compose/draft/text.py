"""Article text as blocks of plain text, and those blocks as Markdown that renders as text only.

Nothing of a page's HTML reaches a piece: elements are reduced to their text, and every
character that Markdown would read as markup (emphasis, links, autolinks, code, headings, list
markers, entities) is escaped, so the piece shows exactly the words the article has.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lxml import html as lxml_html
from lxml.etree import ParserError, _Element

from newsletter.core.personalise import PLACEHOLDER


@dataclass(frozen=True)
class Block:
    """A paragraph ("p") or a list item ("li") of plain text."""

    kind: str
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


_SPACE = re.compile(r"[ \t\n\r\f\v\u0085\u2028\u2029]+")  # not NBSP: French keeps it before ':'


def plain(text: str) -> str:
    """`text` on one line: runs of white space collapsed, control characters dropped (the
    Unicode direction marks of right-to-left text are kept)."""
    text = "".join(c for c in text if c in "\t\n\r" or unicodedata.category(c) != "Cc")
    return _SPACE.sub(" ", text).strip()


_SKIP = {"script", "style", "nav", "footer", "aside", "form", "button", "figure", "figcaption",
         "table", "head", "h1", "h2", "h3", "h4", "h5", "h6", "noscript", "template", "svg",
         "iframe", "select", "graphic"}


_INLINE_SKIP = {"script", "style", "button", "svg", "noscript", "template", "select"}


def _gather(node: _Element, parts: list[str]) -> None:
    if node.text:
        parts.append(node.text)
    for child in node:
        tag = child.tag if isinstance(child.tag, str) else None  # None: a comment
        if tag in ("br", "lb"):
            parts.append(" ")
        elif tag is not None and tag not in _INLINE_SKIP:
            _gather(child, parts)
        if child.tail:
            parts.append(child.tail)


def _text_of(element: _Element) -> str:
    """The element's text; line breaks (<br>, trafilatura's <lb>) become spaces; scripts,
    buttons and comments are left out."""
    parts: list[str] = []
    _gather(element, parts)
    return plain("".join(parts))


def _walk(element: _Element) -> Iterator[Block]:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _SKIP or not tag:
        return
    if tag in ("p", "code", "pre") or (tag in ("quote", "blockquote") and not len(element)):
        text = _text_of(element)
        if text:
            yield Block("p", text)
        return
    if tag in ("li", "item"):
        text = _text_of(element)
        if text:
            yield Block("li", text)
        return
    for child in element:
        yield from _walk(child)


def blocks_of_html(markup: str) -> list[Block]:
    """The paragraphs and list items of an HTML fragment (a feed's content or summary); its
    whole text as one paragraph when it has neither."""
    try:
        root = lxml_html.fragment_fromstring(markup, create_parent="div")
    except (ParserError, ValueError):
        return [Block("p", plain(markup))] if plain(markup) else []
    found = list(_walk(root))
    if not found:
        text = _text_of(root)
        found = [Block("p", text)] if text else []
    return found


def blocks_of_extract(body: _Element | None) -> list[Block]:
    """The paragraphs and list items of trafilatura's extracted body, in order."""
    return [] if body is None else list(_walk(body))


_SENTENCE_END = (".", "!", "?", "؟", "۔", "।", "。", "…", ".”", "!”", "?”", '."', ".’")


def _cut(text: str, budget: int) -> str:
    """The first `budget` words of one long paragraph: up to its last full sentence when that
    keeps at least half of them, else the words themselves and an ellipsis."""
    words = text.split(" ")
    kept = words[:budget]
    for end in range(len(kept), max(budget // 2, 1) - 1, -1):
        if kept[end - 1].endswith(_SENTENCE_END):
            return " ".join(kept[:end])
    return " ".join(kept).rstrip(",;:،؛") + "…"


def opening(blocks: Iterable[Block], budget: int) -> list[Block]:
    """The first blocks whose words add up to at most `budget`; a first block longer than the
    budget is cut (`_cut`), so the opening is never empty when there is text."""
    chosen: list[Block] = []
    used = 0
    for block in blocks:
        if used + block.words <= budget:
            chosen.append(block)
            used += block.words
            continue
        if not chosen:
            chosen.append(Block(block.kind, _cut(block.text, budget)))
        break
    return chosen


_INLINE = re.compile(r"[\\`*_\[\]<~]|&(?=#?[A-Za-z0-9]+;)")
_LINE_START = re.compile(r"^(?:([#>+\-=])|(\d{1,9})([.)]))")


def _unplaceholder(match: re.Match[str]) -> str:
    return match.group(0).replace("%%", "%\u200b%")


def escape_markdown(text: str) -> str:
    """`text` (one line of plain text) as Markdown that renders as exactly that text: inline
    markup characters backslash-escaped, a leading heading, quote or list marker escaped, and a
    `%%key%%` the send step would fill split by a zero-width space."""
    text = PLACEHOLDER.sub(_unplaceholder, text)
    text = _INLINE.sub(lambda m: "\\" + m.group(0), text)
    return _LINE_START.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), text)


def markdown_of(blocks: Iterable[Block]) -> str:
    """Blocks as Markdown: paragraphs apart, consecutive list items as one list."""
    out: list[str] = []
    previous = ""
    for block in blocks:
        line = escape_markdown(block.text)
        if block.kind == "li":
            out.append(("\n" if previous == "li" else "\n\n") + "- " + line)
        else:
            out.append("\n\n" + line)
        previous = block.kind
    return "".join(out).lstrip("\n")
