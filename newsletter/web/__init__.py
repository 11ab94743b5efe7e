"""Web parts of the tool: the staff preview (`newsletter preview`), the public server
(`newsletter serve`: unsubscribe, sign-up, preferences, webhooks, click redirects), the static
archive and its publishing, and the report page.

Each server lives in its own modules and imports Starlette, uvicorn and watchfiles itself, so
the rest of the tool starts without them. This package itself holds only what its modules
share: the templates in assets/, and whole-page HTML edits through lxml.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from lxml import html as lxml_html
from lxml.html import HtmlElement

from newsletter.core.html import edit_page

__all__ = ["edit_page"]  # lives in core so the build uses it too; web modules import it here

ASSETS = Path(__file__).parent / "assets"


@lru_cache(maxsize=1)
def asset_templates() -> jinja2.Environment:
    """The HTML templates in assets/ (preview page and panels, archive index), autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True, trim_blocks=True
    )


def add_first(parent: HtmlElement, markup: str) -> None:
    """Insert the element `markup` as `parent`'s first child, before any text it starts with."""
    element = lxml_html.fragment_fromstring(markup)
    element.tail, parent.text = parent.text, None
    parent.insert(0, element)
