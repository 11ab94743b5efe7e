"""Mixed-direction text: isolate left-to-right runs inside right-to-left HTML, mark text lines.

In right-to-left text, a Latin name, an @handle, a URL, an email address or a number is
wrapped in `<span dir="ltr">` (an isolate: HTML gives every element with `dir` unicode-bidi:
isolate), so its punctuation stays with it. The HTML is walked with lxml; runs are found from
each character's Unicode bidirectional class, not by pattern matching.

A paragraph written in the other direction than its page (an English footer in an Arabic
edition) gets its own `dir` (`direct_paragraphs`): its first strong character says which, and
most of its letters must agree, so an Arabic paragraph that opens with a Latin name stays
right to left.

In the plain-text part, every line is a paragraph for the Unicode bidi algorithm, so each
non-empty line begins with RLM (right-to-left) or LRM (left-to-right) and clients that pick a
direction per paragraph align it correctly; a block of lines in the other direction gets the
other mark (`mark_blocks`).
"""

from __future__ import annotations

import unicodedata
from itertools import groupby

from lxml import etree
from lxml import html as lxml_html

RLM, LRM = "\u200f", "\u200e"
MARKS = {"rtl": RLM, "ltr": LRM}
MARKS_SET = frozenset(MARKS.values())
SKIP = frozenset({"head", "style", "script", "title", "code", "pre"})
LEADING = "\"'«(“‘["
TRAILING = ".,;:!?،؛؟)\"'»”’]"


def _classes(text: str) -> set[str]:
    return {unicodedata.bidirectional(c) for c in text}


def is_ltr_word(word: str) -> bool:
    """A word with Latin (or other left-to-right) letters or European digits, and no RTL ones."""
    found = _classes(word)
    return bool(found & {"L", "EN"}) and not found & {"R", "AL"}


def strong_counts(text: str) -> tuple[int, int]:
    """(right-to-left letters, left-to-right letters) in `text`."""
    rtl = ltr = 0
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            rtl += 1
        elif kind == "L":
            ltr += 1
    return rtl, ltr


def first_strong(text: str) -> str | None:
    """'rtl' or 'ltr' by the first strongly directional character of `text` (the rule of
    HTML's dir=auto), or None when it has none."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return None


def own_direction(text: str) -> str | None:
    """The direction a paragraph is written in: its first strong character's, when most of
    its letters agree (else None: too mixed to say)."""
    found = first_strong(text)
    if found is None:
        return None
    rtl, ltr = strong_counts(text)
    mine, other = (rtl, ltr) if found == "rtl" else (ltr, rtl)
    return found if mine > other else None


def ltr_runs(text: str) -> list[tuple[str, bool]]:
    """`text` split into (piece, is_ltr_run); joined back the pieces give `text` unchanged."""
    tokens = ["".join(g) for _, g in groupby(text, key=str.isspace)]
    out: list[tuple[str, bool]] = []
    run: list[str] = []  # tokens of the current left-to-right run (words and inner spaces)

    def flush() -> None:
        if not run:
            return
        body = "".join(run)
        run.clear()
        head = len(body) - len(body.lstrip(LEADING))
        tail = len(body.rstrip(TRAILING))
        if head:
            out.append((body[:head], False))
        out.append((body[head:tail], True))
        if tail < len(body):
            out.append((body[tail:], False))

    pending_space = ""
    for token in tokens:
        if token.isspace():
            if run:
                pending_space += token
            else:
                out.append((token, False))
            continue
        if is_ltr_word(token):
            if run and pending_space:
                run.append(pending_space)
            run.append(token)
            pending_space = ""
        else:
            flush()
            if pending_space:
                out.append((pending_space, False))
                pending_space = ""
            out.append((token, False))
    flush()
    if pending_space:
        out.append((pending_space, False))
    merged: list[tuple[str, bool]] = []
    for piece, ltr in out:
        if not piece:
            continue
        if merged and not ltr and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + piece, False)
        else:
            merged.append((piece, ltr))
    return merged


def _span(text: str) -> etree._Element:
    span = lxml_html.Element("span", dir="ltr")
    span.text = text
    return span


def _direction(element: etree._Element) -> str | None:
    for node in element.iterancestors() if element.get("dir") is None else ():
        if node.get("dir"):
            return node.get("dir").lower()
    value = element.get("dir")
    return value.lower() if value else None


def _isolate_text(element: etree._Element) -> None:
    """Wrap left-to-right runs of `element.text` in spans (element is in RTL context)."""
    parts = ltr_runs(element.text or "")
    if not any(ltr for _, ltr in parts):
        return
    element.text = ""
    anchor = None
    for piece, ltr in parts:
        if ltr:
            span = _span(piece)
            if anchor is None:
                element.insert(0, span)
            else:
                anchor.addnext(span)
            anchor = span
        elif anchor is None:
            element.text = piece
        else:
            anchor.tail = (anchor.tail or "") + piece


def _isolate_tail(element: etree._Element) -> None:
    parts = ltr_runs(element.tail or "")
    if not any(ltr for _, ltr in parts):
        return
    element.tail = ""
    anchor = element
    for piece, ltr in parts:
        if ltr:
            span = _span(piece)
            anchor.addnext(span)
            anchor = span
        else:
            anchor.tail = (anchor.tail or "") + piece


#: block elements whose text is a paragraph of its own, for `direct_paragraphs`
PARAGRAPHS = frozenset({"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
                        "figcaption", "dd", "dt"})


def _inherited(element: etree._Element, default: str) -> str:
    for node in element.iterancestors():
        value = node.get("dir")
        if value:
            return value.lower()
    return default


def direct_paragraphs(root: etree._Element) -> int:
    """Give each paragraph written in the other direction than where it stands its own `dir`
    (ltr or rtl) and alignment, in place; returns how many changed. Paragraphs inside one that
    already changed, and those with a `dir` of their own, are left alone."""
    body = root.find("body")
    if body is None:
        return 0
    page = (root.get("dir") or "ltr").lower()
    changed = 0
    for element in body.iter(*PARAGRAPHS):
        if element.get("dir") or any(a.tag in SKIP for a in element.iterancestors()):
            continue
        text = element.text_content()
        inherited = _inherited(element, page)
        if first_strong(text) in (None, inherited):
            continue  # the common case, decided by a few characters
        found = own_direction(text)
        if found is not None and found != inherited:
            element.set("dir", found)
            style = (element.get("style") or "").strip().rstrip(";")
            side = "left" if found == "ltr" else "right"  # `start` is unknown to Outlook
            element.set("style", f"{style}; text-align:{side}" if style else f"text-align:{side}")
            changed += 1
    return changed


def isolate_tree(root: etree._Element) -> None:
    """Isolate left-to-right runs in every right-to-left part of a parsed HTML page, in place."""
    body = root.find("body")
    if body is None:
        return
    work: list[tuple[etree._Element, str]] = []
    for element in body.iter():
        if not isinstance(element.tag, str) or element.tag in SKIP:
            continue
        if any(a.tag in SKIP for a in element.iterancestors()):
            continue
        own = _direction(element)
        if element.text and own == "rtl" and not (element.tag == "span" and element.get(
                "dir") == "ltr"):
            work.append((element, "text"))
        parent = element.getparent()
        if element.tail and parent is not None and _direction(parent) == "rtl":
            work.append((element, "tail"))
    for element, which in work:
        if which == "text":
            _isolate_text(element)
        else:
            _isolate_tail(element)


def mark_lines(text: str, direction: str) -> str:
    """Begin every non-empty line of `text` with the mark of `direction` (RLM or LRM)."""
    mark = MARKS[direction]
    return "\n".join(
        line if not line.strip() or line[0] in (RLM, LRM) else mark + line
        for line in text.split("\n")
    )


def mark_blocks(text: str, direction: str) -> str:
    """Like `mark_lines`, but a block of lines (between blank lines) written in the other
    direction (`own_direction` of its unmarked lines) gets that direction's mark."""
    out: list[str] = []
    for block in text.split("\n\n"):
        unmarked = [line for line in block.split("\n") if line.strip() and line[0] not in MARKS_SET]
        found = own_direction(" ".join(unmarked)) if unmarked else None
        out.append(mark_lines(block, found or direction))
    return "\n\n".join(out)
