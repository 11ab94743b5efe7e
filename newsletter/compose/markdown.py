"""Markdown to HTML (for the email) and to plain text (for the text part), from the same tokens.

The text renderer walks markdown-it's token stream rather than scraping HTML, so nothing is lost:
paragraphs are wrapped at 72 columns, list items get hanging indents, and links become numbered
footnotes listed after the block of text they appear in.

What a text gives (its images, paragraphs, HTML and plain text) is kept per text by `KEPT`, in
memory and, inside `KEPT.kept_in(folder)` (the build), in files under `.newsletter/cache/`:
a cold build of unchanged pieces reads them back and never imports markdown-it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from html import escape
from typing import TYPE_CHECKING

from newsletter.compose.memo import Memo

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

WIDTH = 72
KEPT = Memo("markdown", (__file__,), ("markdown_it", "mdurl"))


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "typographer": True}).enable(
        ["replacements", "smartquotes", "strikethrough"])


@lru_cache(maxsize=64)
def parse_tokens(source: str) -> tuple[Token, ...]:
    """markdown-it's tokens for `source`, parsed once per text (a build reads each piece for
    its images, its HTML, its text and its word count; a rebuild in the preview finds the
    pieces that did not change here). Callers must not change them."""
    return tuple(_parser().parse(source))



CREDIT_WORDS = ("Source:", "Sources:", "Credit:", "Photo:", "Data:", "Illustration:")


@dataclass(frozen=True)
class ImageRef:
    """An image in a piece: `![alt](src "title")` on 0-based `line` of the Markdown."""

    src: str
    alt: str
    title: str
    line: int


@dataclass(frozen=True)
class Figure:
    """How an image is shown: its published URL, size in CSS pixels and what it is."""

    url: str
    width: int | None = None  # for a remote image of unknown size, the column width
    height: int | None = None  # None when the size is not known
    kind: str = "Image"  # "Chart" or "Photo"; the text part says "[Chart: alt]"


Figures = Callable[[str], Figure]


def images(source: str) -> list[ImageRef]:
    """Every image in `source`, in order, with the line it is on."""
    found = KEPT.get(source, "images", lambda: [[ref.src, ref.alt, ref.title, ref.line]
                                                for ref in _images(source)], _image_fields)
    return [ImageRef(*fields) for fields in found]


def _image_fields(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(f, list) and len(f) == 4 and all(isinstance(x, str) for x in f[:3])
        and type(f[3]) is int for f in value)


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _images(source: str) -> list[ImageRef]:
    found = []
    for token in parse_tokens(source):
        if token.type != "inline":
            continue
        line = token.map[0] if token.map else 0
        for child in token.children or []:
            if child.type == "image":
                found.append(
                    ImageRef(
                        src=str(child.attrGet("src") or ""),
                        alt=_plain(child.children or []),
                        title=str(child.attrGet("title") or ""),
                        line=line,
                    )
                )
    return found


def split_caption(title: str) -> tuple[str, str]:
    """`"Caption. Source: X"` -> ("Caption.", "Source: X"); the credit starts at a credit word."""
    title = " ".join(title.split())
    starts = [title.find(word) for word in CREDIT_WORDS if word in title]
    if not starts:
        return title, ""
    at = min(starts)
    return title[:at].strip(), title[at:].strip()


def _standalone_image(token: Token) -> Token | None:
    """The image of an inline token that holds nothing else (a paragraph that is one image)."""
    children = [
        c
        for c in token.children or []
        if not (c.type == "text" and not c.content.strip()) and c.type != "softbreak"
    ]
    if len(children) == 1 and children[0].type == "image":
        return children[0]
    return None


def figure_html(image: Token, figure: Figure) -> str:
    """A standalone image as a block: a fluid image with width/height, caption and credit."""
    alt = _plain(image.children or [])
    caption, credit = split_caption(str(image.attrGet("title") or ""))
    size = ""
    style = "display:block;max-width:100%;height:auto;border:0"
    if figure.width:
        # width:100% up to its own width: inside a table cell, max-width alone does not shrink
        # an image below its width attribute, and a phone would scroll sideways
        style = f"display:block;width:100%;max-width:{figure.width}px;height:auto;border:0"
        size = f' width="{figure.width}"'
        if figure.height:
            size += f' height="{figure.height}"'
    out = (
        f'<div class="figure"><img class="figure-img" src="{escape(figure.url)}" '
        f'alt="{escape(alt)}"{size} style="{style}">'
    )
    if caption or credit:
        out += '<p class="caption">' + escape(caption)
        if credit:
            out += (" " if caption else "") + f'<span class="credit">{escape(credit)}</span>'
        out += "</p>"
    return out + "</div>\n"


Looked = tuple[tuple[str, Figure], ...] | None  # each image src of a text with its Figure


def _look_up(source: str, figures: Figures | None) -> Looked:
    """What `figures` says of every image in `source`: with the text, the key of its rendering
    (a rebuild in the preview renders only the pieces that changed)."""
    if figures is None:
        return None
    return tuple((src, figures(src)) for src in dict.fromkeys(ref.src for ref in images(source)))


def to_html(source: str, figures: Figures | None = None) -> str:
    """Render Markdown to HTML; raw HTML in the source is escaped, never passed through.

    With `figures`, each image's src is looked up there: an image alone in its paragraph
    becomes a figure with caption and credit (from its title), other images get the published
    URL and size.
    """
    looked = _look_up(source, figures)
    return KEPT.get(source, f"html {looked!r}", lambda: _to_html(source, looked), _text)


@lru_cache(maxsize=64)
def _to_html(source: str, looked: Looked) -> str:
    from markdown_it.token import Token

    figures = None if looked is None else dict(looked).__getitem__
    tokens = parse_tokens(source)
    md = _parser()
    if figures is None:
        return md.renderer.render(list(tokens), md.options, {})
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "paragraph_open" and i + 2 < len(tokens):
            image = _standalone_image(tokens[i + 1])
            if image is not None:
                block = Token("html_block", "", 0)
                block.content = figure_html(image, figures(str(image.attrGet("src") or "")))
                out.append(block)
                i += 3
                continue
        if token.type == "inline" and any(c.type == "image" for c in token.children or []):
            token = token.copy()  # the parsed tokens are shared: change copies only
            token.children = [c.copy(attrs=dict(c.attrs)) for c in token.children or []]
            for child in token.children:
                if child.type == "image":
                    figure = figures(str(child.attrGet("src") or ""))
                    child.attrSet("src", figure.url)
                    if figure.width and figure.height:  # a known size (not a column default)
                        child.attrSet("width", str(figure.width))
                        child.attrSet("height", str(figure.height))
        out.append(token)
        i += 1
    return md.renderer.render(out, md.options, {})


def paragraphs(source: str) -> list[str]:
    """The plain text of every paragraph (and list item) in `source`, whitespace collapsed."""
    return list(KEPT.get(source, "paragraphs", lambda: _paragraphs(source), _texts))


def _paragraphs(source: str) -> list[str]:
    found = []
    for token in parse_tokens(source):
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


def to_text(source: str, width: int = WIDTH, figures: Figures | None = None) -> str:
    """Render Markdown as wrapped plain text with link footnotes like `[1]`.

    An image alone in its paragraph reads "[Chart: alt] Caption. Source: ..." (`figures` tells
    a chart from a photo).
    """
    looked = _look_up(source, figures)
    return KEPT.get(source, f"text {width} {looked!r}", lambda: _to_text(source, width, looked),
                    _text)


@lru_cache(maxsize=64)
def _to_text(source: str, width: int, looked: Looked) -> str:
    figures = None if looked is None else dict(looked).__getitem__
    state = _TextState()
    blocks: list[tuple[str, bool]] = []  # (text, goes on the line after the previous block)
    tight = new_list = False
    list_depth = 0
    ordered: list[int | None] = []
    item_prefix = ""
    quote = False
    for token in parse_tokens(source):
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
            image = _standalone_image(token)
            if image is not None:
                kind = figures(str(image.attrGet("src") or "")).kind if figures else "Image"
                parts = split_caption(str(image.attrGet("title") or ""))
                caption = " ".join(part for part in parts if part)
                text = f"[{kind}: {_plain(image.children or [])}] {caption}".strip()
            else:
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
