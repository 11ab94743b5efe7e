"""Links know their piece: every <a href> of the email is tied at build time to its piece or
to the chrome (masthead, greeting, footer), so a click reads "piece 2, link 3".

How, without asking templates for anything: the render stage wraps each piece's body in a
marker `<div data-piece="N">` (`piece_marker`). After rendering, an lxml pass finds the
element whose children are the email's sections (the lowest common ancestor of every link
and marker; the footer's unsubscribe link keeps it above the pieces) and gives each link the
piece whose marker sits in the same section (or around the link itself); a link in a
section without exactly one marker belongs to the chrome (piece 0). Links are numbered in
document order: `position` over the whole email (1...), `index` within the piece.

`track` rewrites every trackable link (http(s), no personal placeholder in it) to the
placeholder `%%link|POSITION%%`, which dispatch fills per recipient with a signed redirect URL
(newsletter.events.tracking).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import lxml.html
from lxml.html import HtmlElement

from newsletter.core.personalise import placeholder

MARKER = "data-piece"
CHROME = 0


@dataclass(frozen=True)
class Link:
    """One link of the email: where it is, where it goes."""

    position: int  # 1-based, over the whole email in document order
    piece: int  # 1-based piece number, or 0 for the chrome
    index: int  # 1-based, within its piece (or within the chrome)
    url: str

    @property
    def trackable(self) -> bool:
        return self.url.startswith(("https://", "http://")) and "%%" not in self.url

    @property
    def label(self) -> str:
        where = f"piece {self.piece}" if self.piece else "chrome"
        return f"{where}, link {self.index}"

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label, "tracked": self.trackable}


def piece_marker(number: int, body_html: str) -> str:
    """A piece's body wrapped in the marker the link pass looks for."""
    return f'<div {MARKER}="{number}">{body_html}</div>'


def _anchors(doc: HtmlElement) -> list[HtmlElement]:
    return [a for a in doc.iter("a") if a.get("href") is not None]


def _lowest_common_ancestor(elements: list[HtmlElement]) -> HtmlElement | None:
    if not elements:
        return None
    common = [elements[0], *elements[0].iterancestors()][::-1]  # root first
    for element in elements[1:]:
        chain = [element, *element.iterancestors()][::-1]
        depth = 0
        while depth < min(len(common), len(chain)) and common[depth] is chain[depth]:
            depth += 1
        common = common[:depth]
    return common[-1] if common else None


def _piece_of(anchor: HtmlElement, sections: HtmlElement | None) -> int:
    """The piece number of the marker in `anchor`'s section, or 0 (chrome)."""
    for ancestor in anchor.iterancestors():
        if (ancestor.get(MARKER) or "").isdigit():
            return int(ancestor.get(MARKER))
        if sections is not None and ancestor.getparent() is sections:
            markers = [m for m in ancestor.iter() if (m.get(MARKER) or "").isdigit()]
            return int(markers[0].get(MARKER)) if len(markers) == 1 else CHROME
    return CHROME


def tag_page(doc: HtmlElement) -> list[tuple[HtmlElement, Link]]:
    """Every link element of a parsed page with its Link, in document order."""
    anchors = _anchors(doc)
    markers = [e for e in doc.iter() if isinstance(e.tag, str) and e.get(MARKER)]
    sections = _lowest_common_ancestor(anchors + markers)
    counters: dict[int, int] = {}
    found = []
    for position, anchor in enumerate(anchors, start=1):
        piece = _piece_of(anchor, sections)
        counters[piece] = counters.get(piece, 0) + 1
        found.append((anchor, Link(position, piece, counters[piece], anchor.get("href").strip())))
    return found


def tag_links(html: str) -> list[Link]:
    """Every link of `html` with its piece, in document order."""
    return [link for _, link in tag_page(lxml.html.document_fromstring(html))]


def track(found: list[tuple[HtmlElement, Link]]) -> None:
    """Turn the hrefs of trackable links (from `tag_page`) into `%%link|POSITION%%`, in place."""
    for anchor, link in found:
        if link.trackable:
            anchor.set("href", placeholder("link", str(link.position)))
