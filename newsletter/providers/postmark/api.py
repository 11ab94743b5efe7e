"""Postmark's API as both directions use it: the client with the server token, and Postmark's
words from an error body (the transport and the suppression lists share them)."""

from __future__ import annotations

from typing import Any

from newsletter.core.errors import NewsletterError
from newsletter.providers.http_api import ApiClient, json_body, short

TOKEN_HEADER = "X-Postmark-Server-Token"


def error_text(body: bytes | Any) -> str:
    """Postmark's words from an error body ({"ErrorCode": n, "Message": "..."})."""
    parsed = json_body(body) if isinstance(body, bytes) else body
    if isinstance(parsed, dict) and "Message" in parsed:
        code = parsed.get("ErrorCode")
        return short(f"ErrorCode {code}: {parsed['Message']}" if code else str(parsed["Message"]))
    if isinstance(body, bytes):
        return short(body.decode("utf-8", "replace"))
    return ""


def api(token: str | None, api_url: str, *, connections: int = 8) -> ApiClient:
    """An ApiClient with the server token (NewsletterError when it is not set)."""
    if not token:
        raise NewsletterError("POSTMARK_SERVER_TOKEN is not set; copy the Server API token from "
                              "the API Tokens tab of your Postmark server")
    return ApiClient("Postmark", api_url, headers={TOKEN_HEADER: token,
                                                   "Accept": "application/json"},
                     connections=connections)
