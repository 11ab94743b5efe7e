"""A From address at a reserved domain (RFC 2606: example.org and friends) cannot send for real.

Mail from such a domain fails SPF, DKIM and DMARC everywhere; it is fine in the outbox (and in
the sample publication), and towards a test server on this machine (a loopback SMTP server or
a local stand-in for an API), but an error for a transport that delivers to people.
`sender_problem()` is the rule; `newsletter check` reports it and `send` refuses with it.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from newsletter.checks.model import ERROR, Context, Finding
from newsletter.compose.schema import PublicationConfig
from newsletter.core.settings import Settings

#: RFC 2606 (and RFC 6761): second-level names and top-level names reserved for examples, tests
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = ("example", "invalid", "localhost", "test")


def reserved_domain(address: str) -> str | None:
    """The reserved domain `address` belongs to (example.org, .test, ...), or None."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    for reserved in RESERVED_DOMAINS:
        if domain == reserved or domain.endswith("." + reserved):
            return reserved
    tld = domain.rsplit(".", 1)[-1]
    return f".{tld}" if tld in RESERVED_TLDS else None


def _loopback(url: str | None) -> bool:
    host = (urlsplit(url).hostname or "") if url else ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def delivers(transport: str, settings: Settings) -> bool:
    """Whether `transport` hands mail to the world: the outbox never does, SMTP and the API
    providers do unless they point at this machine (a test server; SES's endpoint is boto3's
    own AWS_ENDPOINT_URL_SESV2 or AWS_ENDPOINT_URL)."""
    if transport == "outbox":
        return False
    where = {"smtp": settings.smtp_url, "sendgrid": settings.sendgrid_api_url,
             "postmark": settings.postmark.api_url, "mailgun": settings.mailgun.api_url,
             "ses": os.environ.get("AWS_ENDPOINT_URL_SESV2") or os.environ.get("AWS_ENDPOINT_URL")}
    return transport not in where or not _loopback(where[transport])


def sender_problem(config: PublicationConfig, settings: Settings, transport: str) -> str | None:
    """Why the From address cannot send through `transport`, or None when it can."""
    address = config.sender.email
    reserved = reserved_domain(address)
    if reserved is None or not delivers(transport, settings):
        return None
    return (f"the From address {address} is at {reserved}, a domain reserved for examples "
            f"(RFC 2606): mail from it through {transport} would be rejected or land in spam")


def check_reserved_sender(ctx: Context) -> list[Finding]:
    transport = ctx.transport or ctx.pub.settings.transport
    problem = sender_problem(ctx.build.config, ctx.pub.settings, transport)
    if problem is None:
        return []
    settings = str(ctx.pub.root / "newsletter.yaml")
    line = next((s.find("from:") for s in ctx.sources if str(s.path) == settings), None)
    return [Finding(ERROR, "compliance.from-domain", problem,
                    "set from: {email: ...} in newsletter.yaml to an address at your own "
                    "domain (with SPF, DKIM and DMARC set up for it)", file=settings, line=line)]
