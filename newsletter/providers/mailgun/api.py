"""Mailgun's API as both directions use it: the region's host, the client with basic auth
api:KEY for one sending domain, and Mailgun's words from an error body (the transport and the
suppression lists share them)."""

from __future__ import annotations

import re

from newsletter.core.errors import NewsletterError
from newsletter.providers.http_api import ApiClient, json_body, short

REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


def error_text(body: bytes) -> str:
    """Mailgun's words from an error body ({"message": "..."}, or plain text)."""
    parsed = json_body(body)
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return short(parsed["message"])
    return short(body.decode("utf-8", "replace")) if body else ""


def api_url(region: str, override: str | None) -> str:
    return override or REGIONS[region]


def api(key: str | None, domain: str | None, url: str, *, connections: int = 8) -> ApiClient:
    """An ApiClient with basic auth api:KEY (NewsletterError when a setting is missing)."""
    if not key:
        raise NewsletterError("MAILGUN_API_KEY is not set; create an account API key in "
                              "Mailgun (API Security): a domain sending key cannot read or "
                              "release suppressions")
    check_domain(domain)
    return ApiClient("Mailgun", url, auth=("api", key), connections=connections,
                     headers={"Accept": "application/json"})


def check_domain(domain: str | None) -> str:
    if not domain:
        raise NewsletterError("MAILGUN_DOMAIN is not set; name the sending domain you verified "
                              "in Mailgun (e.g. mg.example.org)")
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain) or ".." in domain:
        raise NewsletterError(f"MAILGUN_DOMAIN {domain!r} is not a domain name")
    return domain
