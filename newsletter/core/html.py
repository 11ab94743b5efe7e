"""Whole-page HTML through lxml, shared by the build (its page passes) and the web side."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree
from lxml import html as lxml_html
from lxml.html import HtmlElement


def parse_page(html: str) -> HtmlElement:
    """A whole HTML page as an lxml tree."""
    return lxml_html.document_fromstring(html)


def serialise_page(doc: HtmlElement, doctype: bool) -> str:
    """The page as HTML; `doctype`: write the page's doctype (when its source had one).

    Comments (MSO conditionals included) and the Content-Type meta are kept (etree's serialiser;
    lxml.html's drops that meta).
    """
    declared = doc.getroottree().docinfo.doctype if doctype else None
    return etree.tostring(doc, method="html", encoding="unicode", doctype=declared)


def edit_page(html: str, edit: Callable[[HtmlElement], None]) -> str:
    """Parse a whole HTML page with lxml, let `edit` change the tree, and serialise it again
    (with a doctype only when the page had one)."""
    doc = parse_page(html)
    edit(doc)
    return serialise_page(doc, doctype=html.lstrip()[:9].lower() == "<!doctype")
