"""The public app's state and the helpers its handlers share: pages, forms, links, the visitor.

Handlers are module-level functions (newsletter.web.consent, .engagement, .preferences) that
find the `PublicSide` of their app with `side_of(request)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.compose.publication import Publication
from newsletter.core.privacy import throttle_key
from newsletter.core.tokens import Keys
from newsletter.events import optin
from newsletter.events.classify import Thresholds
from newsletter.events.policy import SoftBounceLimit
from newsletter.web.csrf import Csrf

MAX_FORM_BYTES = 16 * 1024
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # tokens are in the URL: never leak them onwards
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}
INVALID = "The link is incomplete, altered or out of date."


def templates() -> jinja2.Environment:
    """The page and confirmation-email templates (HTML autoescaped)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("newsletter.web", "public_templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def base_path(public_url: str) -> str:
    """The path `public_url` has on its host, with a trailing slash ("/" for none)."""
    path = urlsplit(public_url).path or "/"
    return path if path.endswith("/") else path + "/"


@dataclass
class PublicSide:
    """The app's state: publication, database, keys, throttles and page rendering."""

    pub: Publication
    engine: Engine
    keys: Keys  # the rotation list every token is checked with
    env: jinja2.Environment
    limits: optin.Limits
    webhook_key: Any
    topics: dict[str, str]
    thresholds: Thresholds = Thresholds()
    languages: dict[str, str] = field(default_factory=dict)  # the preference page's, once read
    #: set by a confirmed sign-up: the welcome goes out now (newsletter.web.public_sending)
    welcome_wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.csrf = Csrf(self.keys)
        self.base = base_path(self.pub.config.public_url)
        self.soft_bounces = SoftBounceLimit.of(self.pub.config.bounces)

    @property
    def headers(self) -> dict[str, str]:
        return dict(HEADERS)

    def url(self, path: str = "") -> str:
        """The path of one of our pages as the browser sees it (under public_url's path)."""
        return self.base + path.lstrip("/")

    def page(self, template: str, status: int = 200, /, **values: Any) -> HTMLResponse:
        config = self.pub.config
        html = self.env.get_template(template).render(
            publication=config.name, publisher=config.publisher, address=config.address,
            language=config.language, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def invalid(self, message: str = INVALID, status: int = 400) -> Response:
        return self.page("invalid.html", status, message=message, subscribe=self.url("subscribe"))

    def too_many(self) -> Response:
        response = self.invalid("Too many requests from your network; please try again in an "
                                "hour.", 429)
        response.headers["Retry-After"] = str(self.limits.ip_window_s)
        return response


def side_of(request: Request) -> PublicSide:
    """The PublicSide of the app serving `request`."""
    return request.app.state.public


def client_key(request: Request) -> str:
    """Whom a sign-up throttle counts: the visitor's IP (uvicorn puts a trusted proxy's
    X-Forwarded-For there), an IPv6 visitor by their /64."""
    return throttle_key(request.client.host if request.client else None)


class TooLarge(Exception):
    """The request body passed its cap."""


async def capped_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they stream in (chunked or not); TooLarge as soon as they pass
    `limit` bytes, without reading the rest. A Content-Length over the cap is refused before
    reading anything."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        yield chunk


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes (TooLarge otherwise; see capped_chunks)."""
    return b"".join([chunk async for chunk in capped_chunks(request, limit)])


async def read_form(request: Request) -> dict[str, list[str]] | None:
    """The urlencoded form, or None when it is larger than MAX_FORM_BYTES."""
    try:
        body = await read_capped(request, MAX_FORM_BYTES)
    except TooLarge:
        return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def first_values(form: dict[str, list[str]]) -> dict[str, str]:
    """Each field's first value."""
    return {k: (v[0] if v else "") for k, v in form.items()}


def too_large() -> Response:
    return Response("Request too large", 413, headers=HEADERS)
