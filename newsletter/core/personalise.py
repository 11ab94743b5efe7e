"""Per-recipient personalisation by substitution into the once-rendered email.

Templates emit placeholders `%%key%%` or `%%key|fallback%%` (via the Jinja helper `recipient()`).
Keys: `name`, `first_name`, `email`, `unsubscribe_url`, and `attr.<name>` for any subscriber
attribute. Values are HTML-escaped in the HTML part and inserted verbatim in the text part.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEYS = ("name", "first_name", "email", "unsubscribe_url")  # besides attr.<name>
PLACEHOLDER = re.compile(r"%%([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)?)(?:\|([^%<>\n]{0,60}))?%%")


@dataclass(frozen=True)
class Recipient:
    """Who a message is personalised for."""

    email: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


SAMPLE_RECIPIENT = Recipient(email="reader@example.org", name="Sample Reader")


def placeholder(key: str, fallback: str = "") -> str:
    """The placeholder text a template writes for `key` (used by the Jinja helper)."""
    return f"%%{key}|{fallback}%%" if fallback else f"%%{key}%%"


def placeholders_in(*contents: str) -> set[str]:
    """Every distinct placeholder string that occurs in the given contents."""
    return {m.group(0) for content in contents for m in PLACEHOLDER.finditer(content)}


def value_for(key: str, fallback: str, recipient: Recipient, unsubscribe: str) -> str:
    """The raw (unescaped) value of one placeholder for one recipient."""
    if key == "email":
        value = recipient.email
    elif key == "name":
        value = recipient.name.strip()
    elif key == "first_name":
        value = recipient.name.strip().split(" ")[0] if recipient.name.strip() else ""
    elif key == "unsubscribe_url":
        value = unsubscribe
    elif key.startswith("attr."):
        raw = recipient.attributes.get(key[5:])
        value = "" if raw is None else str(raw)
    else:
        value = ""
    return value or fallback


def values(recipient: Recipient, found: set[str], unsubscribe: str) -> dict[str, str]:
    """Map each placeholder string in `found` to its raw value for `recipient`."""
    out = {}
    for text in found:
        match = PLACEHOLDER.fullmatch(text)
        if match:
            out[text] = value_for(match.group(1), match.group(2) or "", recipient, unsubscribe)
    return out


def substitute(content: str, mapping: Mapping[str, str], *, as_html: bool) -> str:
    """Replace placeholders in `content`; escape values for HTML when `as_html`."""

    def repl(match: re.Match[str]) -> str:
        value = mapping.get(match.group(0))
        if value is None:
            value = value_for(match.group(1), match.group(2) or "", Recipient(""), "")
        return html.escape(value, quote=True) if as_html else value

    return PLACEHOLDER.sub(repl, content)


def personalise(
    html_part: str, text_part: str, recipient: Recipient, unsubscribe: str
) -> tuple[str, str]:
    """Both parts personalised for one recipient."""
    mapping = values(recipient, placeholders_in(html_part, text_part), unsubscribe)
    return (
        substitute(html_part, mapping, as_html=True),
        substitute(text_part, mapping, as_html=False),
    )
