"""Web parts of the tool: the staff preview server (`newsletter preview`).

Each server lives in its own module and imports Starlette, uvicorn and watchfiles itself, so the
rest of the tool starts without them. This package itself holds only what the preview shares
with the archive (newsletter.web.archive): the templates in assets/, and whole-page HTML edits
through lxml.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import jinja2
from lxml import etree
from lxml import html as lxml_html
from lxml.html import HtmlElement

ASSETS = Path(__file__).parent / "assets"


@lru_cache(maxsize=1)
def asset_templates() -> jinja2.Environment:
    """The HTML templates in assets/ (preview page and panels, archive index), autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True, trim_blocks=True
    )


def edit_page(html: str, edit: Callable[[HtmlElement], None]) -> str:
    """Parse a whole HTML page with lxml, let `edit` change the tree, and serialise it again.

    Comments (MSO conditionals included) and the Content-Type meta are kept; a doctype is
    written only when the page had one.
    """
    doc = lxml_html.document_fromstring(html)
    edit(doc)
    had_doctype = html.lstrip()[:9].lower() == "<!doctype"
    doctype = doc.getroottree().docinfo.doctype if had_doctype else None
    return etree.tostring(doc, method="html", encoding="unicode", doctype=doctype)


def add_first(parent: HtmlElement, markup: str) -> None:
    """Insert the element `markup` as `parent`'s first child, before any text it starts with."""
    element = lxml_html.fragment_fromstring(markup)
    element.tail, parent.text = parent.text, None
    parent.insert(0, element)
