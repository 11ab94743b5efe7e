"""Inline stage: move CSS from <style> blocks onto elements with premailer.

Media queries stay in a <style> block (clients that support them use them). cssutils, which
premailer uses, logs every CSS property it does not know; that noise is silenced here.
"""

from __future__ import annotations

import logging

import cssutils
from premailer import Premailer

cssutils.log.setLevel(logging.CRITICAL)
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)


def inline_css(html: str) -> str:
    """Return `html` with its CSS inlined; placeholders and URLs are left untouched."""
    return Premailer(
        html,
        base_url=None,
        allow_network=False,
        remove_classes=False,
        strip_important=False,
        keep_style_tags=False,
        exclude_pseudoclasses=True,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
