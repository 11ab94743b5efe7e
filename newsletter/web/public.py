"""`newsletter serve`: the public side, a Starlette app to run behind a reverse proxy.

Routes:
- `GET /healthz`: 200 when the database answers, else 503;
- `GET /unsubscribe/{token}`: a page with one button; `POST` (RFC 8058 one-click, body
  `List-Unsubscribe=One-Click`, or that button) unsubscribes at once and answers 200;
- `POST /resubscribe/{token}`: emails a confirmation link (resubscribing is opt-in too);
- `GET /subscribe` (form) and `POST /subscribe`: email, name, topics; emails a confirmation;
- `GET /confirm/{token}`: a page with one button; `POST` makes the subscription active;
- `POST /webhooks/sendgrid`: SendGrid's signed Event Webhook;
- `GET /c/{token}`: a tracked link (newsletter.events.tracking): 302 to that link of that
  send's email, the click recorded; a bad token or a link the send does not have gets 404.

Tokens are HMAC-signed (newsletter.core.tokens). Pages look the same whether or not an address is
subscribed; a bad token gets 400 and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jinja2
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from newsletter.audience.model import normalize_email
from newsletter.build.publication import Publication
from newsletter.core.errors import InputError, Problem
from newsletter.core.tokens import BadToken, make_token, read_token
from newsletter.events import optin, tracking
from newsletter.events.apply import apply_batch
from newsletter.events.classify import Thresholds
from newsletter.providers.sendgrid.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignature,
    load_public_key,
    verify,
)
from newsletter.providers.sendgrid.webhook import parse_events

log = logging.getLogger("newsletter.public")

MAX_FORM_BYTES = 16 * 1024
MAX_WEBHOOK_BYTES = 20 * 1024 * 1024
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # tokens are in the URL: never leak them onwards
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}


def templates() -> jinja2.Environment:
    """The page and confirmation-email templates (HTML autoescaped)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("newsletter.web", "public_templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def topics_of(pub: Publication) -> dict[str, str]:
    """Topics the sign-up form offers: newsletter.yaml `topics: {tag: label}` (optional)."""
    return dict(pub.config.topics)


@dataclass
class PublicSide:
    """The app's state: publication, database, secrets and throttles."""

    pub: Publication
    engine: Engine
    secret: str
    env: jinja2.Environment
    limits: optin.Limits
    ip_window: optin.IpWindow
    webhook_key: Any
    topics: dict[str, str]
    limits_of_rules: Thresholds = Thresholds()

    def page(self, template: str, status: int = 200, /, **values: Any) -> HTMLResponse:
        config = self.pub.config
        html = self.env.get_template(template).render(
            publication=config.name, publisher=config.publisher, address=config.address,
            language=config.language, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def invalid(self, message: str = "The link is incomplete, altered or out of date.") -> Response:
        return self.page("invalid.html", 400, message=message, subscribe="../subscribe")

    def confirm_link(self, email: str) -> str:
        token = make_token(self.secret, optin.CONFIRM_PURPOSE, email, ttl=optin.CONFIRM_TTL_S)
        return f"{self.pub.config.public_url}confirm/{token}"

    def send_confirmation(self, email: str, name: str) -> None:
        from newsletter.events.mailer import send_confirmation

        send_confirmation(self.pub, self.env, email, name, self.confirm_link(email),
                          optin.CONFIRM_TTL_S // 86400)

    def check_inbox(self, email: str, task: BackgroundTask | None = None) -> Response:
        response = self.page("check_inbox.html", email=email, days=optin.CONFIRM_TTL_S // 86400)
        response.background = task
        return response

    async def start_signup(self, email: str, name: str, tags: list[str]) -> Response:
        """Record the request and, unless throttled, email a confirmation after answering."""
        send = await run_in_threadpool(optin.request_signup, self.engine, email, name, tags,
                                       limits=self.limits)
        task = BackgroundTask(run_in_threadpool, self.send_confirmation, email, name) if send \
            else None
        return self.check_inbox(email, task)


async def _form(request: Request) -> dict[str, list[str]] | None:
    """The urlencoded form, or None when it is too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def create_app(pub: Publication, *, engine: Engine | None = None,
               limits: optin.Limits | None = None) -> Starlette:
    """The public app for `pub` (NEWSLETTER_SECRET is required)."""
    settings = pub.settings
    if not settings.secret:
        raise InputError(Problem("NEWSLETTER_SECRET", None, "NEWSLETTER_SECRET is not set; it "
                                 "signs unsubscribe and confirmation links (use a long random "
                                 "value and keep it stable)"))
    key = None
    if settings.webhook_public_key:
        try:
            key = load_public_key(settings.webhook_public_key)
        except ValueError as exc:
            raise InputError(Problem("SENDGRID_WEBHOOK_PUBLIC_KEY", None, str(exc))) from None
    owned = engine is None
    if engine is None:
        from newsletter.db import open_database

        engine = open_database(settings)
    limits = limits or optin.Limits()
    side = PublicSide(pub=pub, engine=engine, secret=settings.secret, env=templates(),
                      limits=limits, ip_window=optin.IpWindow(limits.ip_requests,
                                                              limits.ip_window_s),
                      webhook_key=key, topics=topics_of(pub),
                      limits_of_rules=Thresholds.of(pub.config.tracking))

    def token_email(request: Request, purpose: str) -> str | None:
        try:
            return read_token(side.secret, purpose, request.path_params["token"])
        except BadToken:
            return None

    async def healthz(request: Request) -> Response:
        def ping() -> None:
            with side.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await run_in_threadpool(ping)
        except SQLAlchemyError:
            log.exception("health check: database unavailable")
            return JSONResponse({"status": "unavailable", "database": "error"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def unsubscribe_page(request: Request) -> Response:
        email = token_email(request, "unsubscribe")
        if email is None:
            return side.invalid()
        return side.page("unsubscribe.html", email=email, action="")

    async def unsubscribe_now(request: Request) -> Response:
        email = token_email(request, "unsubscribe")
        if email is None:
            return side.invalid()
        await run_in_threadpool(optin.unsubscribe_address, side.engine, email)
        token = request.path_params["token"]
        return side.page("unsubscribed.html", email=email, resubscribe=f"../resubscribe/{token}")

    async def resubscribe(request: Request) -> Response:
        email = token_email(request, "unsubscribe")
        if email is None:
            return side.invalid()
        if not side.ip_window.allow(_client(request)):
            return _too_many(side)
        return await side.start_signup(email, "", [])

    async def subscribe_form(request: Request) -> Response:
        return side.page("subscribe.html", action="", topics=side.topics, chosen=[], email="",
                         name="", error=None)

    async def subscribe(request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return Response("Request too large", 413, headers=HEADERS)
        first = {k: (v[0] if v else "") for k, v in form.items()}
        raw_email, name = first.get("email", "").strip(), " ".join(first.get("name", "").split())
        chosen = optin.clean_topics(form.get("topics", []), side.topics)
        if first.get("website"):  # the honeypot: answer as if all went well, do nothing
            return side.check_inbox(raw_email)
        try:
            email = normalize_email(raw_email)
        except ValueError:
            return side.page("subscribe.html", 400, action="", topics=side.topics,
                             chosen=chosen, email=raw_email, name=name,
                             error="Please enter a valid email address.")
        if not side.ip_window.allow(_client(request)):
            return _too_many(side)
        return await side.start_signup(email, name[:200], chosen)

    async def confirm_page(request: Request) -> Response:
        email = token_email(request, optin.CONFIRM_PURPOSE)
        if email is None:
            return side.invalid("The confirmation link is altered or has expired. "
                                "Subscribe again to get a new one.")
        return side.page("confirm.html", email=email, action="")

    async def confirm(request: Request) -> Response:
        email = token_email(request, optin.CONFIRM_PURPOSE)
        if email is None:
            return side.invalid("The confirmation link is altered or has expired. "
                                "Subscribe again to get a new one.")
        await run_in_threadpool(optin.confirm_signup, side.engine, email)
        return side.page("confirmed.html", email=email)

    async def webhook(request: Request) -> Response:
        if side.webhook_key is None:
            return JSONResponse({"error": "SENDGRID_WEBHOOK_PUBLIC_KEY is not set"}, 503)
        if int(request.headers.get("content-length") or 0) > MAX_WEBHOOK_BYTES:
            return JSONResponse({"error": "body too large"}, 413)
        body = await request.body()
        try:
            verify(side.webhook_key, request.headers.get(SIGNATURE_HEADER),
                   request.headers.get(TIMESTAMP_HEADER), body)
        except BadSignature as exc:
            return JSONResponse({"error": f"rejected: {exc}"}, 403)
        try:
            payload = json.loads(body)
            events, ignored = parse_events(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return JSONResponse({"error": "the body is not a JSON array of events"}, 400)
        try:
            report = await run_in_threadpool(apply_batch, side.engine, events,
                                             limits=side.limits_of_rules)
        except SQLAlchemyError:
            log.exception("webhook: could not store %d events", len(events))
            return JSONResponse({"error": "database unavailable; retry later"}, 503)
        report.received, report.ignored = len(payload), ignored
        return JSONResponse(report.as_dict())

    async def click(request: Request) -> Response:
        def find() -> tracking.Click | None:
            with side.engine.connect() as conn:
                return tracking.resolve_click(conn, [side.secret], request.path_params["token"])

        found = await run_in_threadpool(find)
        if found is None:
            return side.page("invalid.html", 404, message="This link is altered or is not a "
                             "link of this newsletter.", subscribe="../subscribe")
        if request.method == "HEAD":  # link checkers and scanners peek; people GET
            return Response(status_code=302, headers={**HEADERS, "Location": found.url})
        try:
            await run_in_threadpool(tracking.record_click, side.engine, found,
                                    request.headers.get("user-agent"), _client(request),
                                    side.limits_of_rules)
        except SQLAlchemyError:  # the reader still gets where they wanted to go
            log.exception("click: could not record a click of send %s", found.send_id)
        return Response(status_code=302, headers={**HEADERS, "Location": found.url})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if owned:
            side.engine.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe_now, methods=["POST"]),
            Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
            Route("/subscribe", subscribe_form, methods=["GET"]),
            Route("/subscribe", subscribe, methods=["POST"]),
            Route("/confirm/{token}", confirm_page, methods=["GET"]),
            Route("/confirm/{token}", confirm, methods=["POST"]),
            Route("/webhooks/sendgrid", webhook, methods=["POST"]),
            Route("/c/{token}", click, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.public = side
    return app


def _client(request: Request) -> str:
    """The visitor's IP (uvicorn puts the proxy's X-Forwarded-For here when trusted)."""
    return request.client.host if request.client else "unknown"


def _too_many(side: PublicSide) -> Response:
    response = side.page("invalid.html", 429, message="Too many requests from your network; "
                         "please try again in an hour.", subscribe="../subscribe")
    response.headers["Retry-After"] = str(side.limits.ip_window_s)
    return response


def serve(pub: Publication, host: str, port: int, *, forwarded_allow_ips: str,
          log_level: str = "info", ready: Callable[[], None] | None = None) -> None:
    """Run the app with uvicorn until interrupted (`ready` runs once the app is made)."""
    import uvicorn

    app = create_app(pub)
    if ready:
        ready()
    uvicorn.run(app, host=host, port=port, proxy_headers=True,
                forwarded_allow_ips=forwarded_allow_ips, log_level=log_level,
                server_header=False)
