"""SendGrid's error answers, as the transport and the suppression lists read them: its JSON
error body ({"errors": [{"message", "field"}]}) and the words in it."""

from __future__ import annotations

import json


def provider_message(body: bytes | str | None) -> str:
    """SendGrid's error text from a response body ({"errors": [{"message", "field"}]})."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return " ".join(text.split())[:300]
    parts = []
    for error in errors[:5]:
        field = error.get("field")
        message = error.get("message") or ""
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def sendgrid_error_body(body: bytes | str | None) -> bool:
    """Whether `body` is SendGrid's own JSON error answer ({"errors": [...]})."""
    if not body:
        return False
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("errors"), list)
