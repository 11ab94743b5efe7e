"""Whole-page HTML edits through lxml, shared by the build and the web side."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree
from lxml import html as lxml_html
from lxml.html import HtmlElement


def edit_page(html: str, edit: Callable[[HtmlElement], None]) -> str:
    """Parse a whole HTML page with lxml, let `edit` change the tree, and serialise it again.

    Comments (MSO conditionals included) and the Content-Type meta are kept (etree's serialiser;
    lxml.html's drops that meta); a doctype is written only when the page had one.
    """
    doc = lxml_html.document_fromstring(html)
    edit(doc)
    had_doctype = html.lstrip()[:9].lower() == "<!doctype"
    doctype = doc.getroottree().docinfo.doctype if had_doctype else None
    return etree.tostring(doc, method="html", encoding="unicode", doctype=doctype)
