"""Markdown to HTML (for the email) and to plain text (for the text part), from the same tokens.

The text renderer walks markdown-it's token stream rather than scraping HTML, so nothing is lost:
paragraphs are wrapped at 72 columns, list items get hanging indents, and links become numbered
footnotes listed after the block of text they appear in.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

WIDTH = 72

_md = MarkdownIt("commonmark", {"html": False, "typographer": True}).enable(
    ["replacements", "smartquotes", "strikethrough"]
)


def to_html(source: str) -> str:
    """Render Markdown to HTML; raw HTML in the source is escaped, never passed through."""
    return _md.render(source)


def paragraphs(source: str) -> list[str]:
    """The plain text of every paragraph (and list item) in `source`, whitespace collapsed."""
    found = []
    for token in _md.parse(source):
        if token.type == "inline":
            found.append(" ".join(_plain(token.children or []).split()))
    return [p for p in found if p]


def _plain(children: list[Token]) -> str:
    out = []
    for tok in children:
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif tok.type == "image":
            out.append(tok.content)
    return "".join(out)


@dataclass
class _TextState:
    links: list[str] = field(default_factory=list)


def to_text(source: str, width: int = WIDTH) -> str:
    """Render Markdown as wrapped plain text with link footnotes like `[1]`."""
    state = _TextState()
    blocks: list[tuple[str, bool]] = []  # (text, goes on the line after the previous block)
    tight = new_list = False
    list_depth = 0
    ordered: list[int | None] = []
    item_prefix = ""
    quote = False
    for token in _md.parse(source):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            new_list = new_list or list_depth == 0
            list_depth += 1
            ordered.append(
                int(token.attrGet("start") or 1) if token.type.startswith("ordered") else None
            )
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
            ordered.pop()
        elif token.type == "list_item_open":
            if ordered[-1] is None:
                item_prefix = "- "
            else:
                item_prefix = f"{ordered[-1]}. "
                ordered[-1] += 1
        elif token.type in ("paragraph_open", "heading_open"):
            tight = token.hidden  # markdown-it hides the <p> of tight list items
        elif token.type == "blockquote_open":
            quote = True
        elif token.type == "blockquote_close":
            quote = False
        elif token.type == "inline":
            text = _inline_text(token.children or [], state)
            indent = "  " * max(list_depth - 1, 0)
            if item_prefix:
                first, rest = indent + item_prefix, indent + " " * len(item_prefix)
                item_prefix = ""
            elif list_depth:
                first = rest = indent + "  "
            else:
                first = rest = "> " if quote else ""
            blocks.append((_wrap(text, width, first, rest), tight and not new_list))
            new_list = False
        elif token.type in ("fence", "code_block"):
            blocks.append((token.content.rstrip("\n"), False))
        elif token.type == "hr":
            blocks.append(("-" * 20, False))
    text = _join_blocks(blocks)
    if state.links:
        notes = "\n".join(f"[{i}] {url}" for i, url in enumerate(state.links, 1))
        text = f"{text}\n\n{notes}"
    return text


def _join_blocks(blocks: list[tuple[str, bool]]) -> str:
    """Separate blocks by blank lines, except the items of a tight list, one per line."""
    out = ""
    for text, follows in blocks:
        if out:
            out += "\n" if follows else "\n\n"
        out += text
    return out


def _inline_text(children: list[Token], state: _TextState) -> str:
    out: list[str] = []
    href_stack: list[str | None] = []
    for tok in children:
        kind = tok.type
        if kind in ("text", "code_inline"):
            out.append(tok.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append(" ")
        elif kind in ("em_open", "em_close"):
            out.append("*")
        elif kind in ("strong_open", "strong_close"):
            out.append("**")
        elif kind == "link_open":
            href_stack.append(str(tok.attrGet("href") or ""))
        elif kind == "link_close":
            href = href_stack.pop() if href_stack else ""
            if href.startswith("mailto:"):
                out.append(f" <{href.removeprefix('mailto:')}>")
            elif href:
                state.links.append(href)
                out.append(f" [{len(state.links)}]")
        elif kind == "image":
            out.append(f"[{tok.content}]")
    return "".join(out)


def _wrap(text: str, width: int, first: str, rest: str) -> str:
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
