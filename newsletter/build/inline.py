"""Inline stage: move CSS from <style> blocks onto elements with premailer.

Media queries stay in a <style> block (clients that support them use them). cssutils, which
premailer uses, logs every CSS property it does not know; that noise is silenced here.
premailer copies CSS `height` into a `height` attribute, overwriting the pixel height an image
carries for Outlook with `height="auto"`; that copy is turned off (widths are still copied,
which tables need). An image's fluid `width:100%` would likewise replace its pixel `width`
attribute with "100%"; `_image_widths` puts the pixel width (its `max-width`) back.
"""

from __future__ import annotations

import logging

import cssutils
import lxml.html
from premailer import Premailer

from newsletter.core.html import edit_page

cssutils.log.setLevel(logging.CRITICAL)
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)


def inline_css(html: str) -> str:
    """Return `html` with its CSS inlined; placeholders and URLs are left untouched."""
    return _image_widths(Premailer(
        html,
        base_url=None,
        allow_network=False,
        remove_classes=False,
        strip_important=False,
        keep_style_tags=False,
        exclude_pseudoclasses=True,
        disable_validation=True,
        disable_basic_attributes=["height"],
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False))


def _image_widths(html: str) -> str:
    """Give each fluid image (`width:100%; max-width:Npx`) back its pixel width attribute N."""
    if 'width="100%"' not in html:  # nothing premailer rewrote: skip the second parse
        return html

    def restore(doc: lxml.html.HtmlElement) -> None:
        for img in doc.iter("img"):
            if img.get("width") != "100%":
                continue
            for declaration in (img.get("style") or "").split(";"):
                name, _, value = declaration.partition(":")
                if name.strip() == "max-width" and value.strip().endswith("px"):
                    img.set("width", value.strip().removesuffix("px"))

    return edit_page(html, restore)
