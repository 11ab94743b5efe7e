"""`newsletter serve`: the public side, a Starlette app to run behind a reverse proxy.

Routes:
- `GET /`: a small page linking to the archive and the sign-up form;
- `GET /healthz`: database reachable, secret set, webhook key loaded; 503 when the database
  does not answer (or the webhook key is missing while NEWSLETTER_TRANSPORT is sendgrid);
- `GET <archive path>/...`: the published archive (newsletter.web.site);
- `GET /unsubscribe/{token}`: a page with one button; `POST` (RFC 8058 one-click, body
  `List-Unsubscribe=One-Click`, or that button) unsubscribes at once and answers 200;
- `POST /resubscribe/{token}`: emails a confirmation link (resubscribing is opt-in too);
- `GET /subscribe` (form) and `POST /subscribe`: email, name, topics; emails a confirmation;
  the form carries a CSRF token bound to a cookie (signed double submit);
- `GET /confirm/{token}`: a page with one button; `POST` makes the subscription active (once:
  a second use answers "already confirmed" and changes nothing);
- `POST /webhooks/sendgrid`: SendGrid's signed Event Webhook; the body is capped while it
  streams in (chunked bodies included), before the signature is checked;
- `/preferences/{token}`: the subscriber's preference page (newsletter.web.preferences).

GETs never change state. Tokens are HMAC-signed (newsletter.core.tokens) with NEWSLETTER_SECRET and
checked against it and NEWSLETTER_SECRET_PREVIOUS. Pages look the same whether or not an address
is subscribed; a bad token gets 400 and changes nothing. The sign-up throttles live in the
database, shared by every `serve` process. While serving, events older than
NEWSLETTER_EVENTS_KEEP_DAYS are pruned once an hour.

To add a route: write `async def handler(request)` inside `create_app` and list it in ROUTES'
place at the end of `create_app` (one `Route` per method).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
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

from newsletter.audience.model import clean_name, normalize_email
from newsletter.compose.publication import Publication
from newsletter.core.errors import InputError, Problem
from newsletter.core.tokens import (
    BadToken,
    make_token,
    read_token,
    read_token_info,
    signing_secrets,
)
from newsletter.events import optin, tracking
from newsletter.events.apply import apply_batch
from newsletter.events.classify import Thresholds
from newsletter.events.prune import prune_events
from newsletter.events.suppressions import release_quietly
from newsletter.providers.sendgrid.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignature,
    check_headers,
    load_public_key,
    verify_digest,
)
from newsletter.providers.sendgrid.webhook import parse_events
from newsletter.web.preferences import routes as preference_routes
from newsletter.web.public_webhooks import webhook_routes
from newsletter.web.publish import local_folder
from newsletter.web.site import AccessLog, archive_mount, archive_routes, log_config

log = logging.getLogger("newsletter.public")

MAX_FORM_BYTES = 16 * 1024
MAX_WEBHOOK_BYTES = 20 * 1024 * 1024
SPOOL_BYTES = 1024 * 1024  # webhook bodies beyond this wait on disk until verified
PRUNE_EVERY_S = 3600
CSRF_PURPOSE = "csrf"
CSRF_COOKIE = "nl_csrf"
CSRF_TTL_S = 6 * 3600
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
    secrets: list[str]  # the current secret first, then earlier ones still accepted
    env: jinja2.Environment
    limits: optin.Limits
    webhook_key: Any
    topics: dict[str, str]
    headers: dict[str, str] = field(default_factory=lambda: dict(HEADERS))

    @property
    def secret(self) -> str:
        """The secret new tokens are signed with."""
        return self.secrets[0]
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
        token = make_token(self.secret, optin.CONFIRM_PURPOSE, email, ttl=optin.CONFIRM_TTL_S,
                           stamped=True)
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

    async def allow(self, request: Request) -> bool:
        """Count a sign-up request against the visitor's IP (shared by every process)."""
        return await run_in_threadpool(optin.allow_client, self.engine, _client(request),
                                       self.limits)

    def subscribe_page(self, request: Request, status: int = 200, *, chosen: Iterable[str] = (),
                       email: str = "", name: str = "", error: str | None = None) -> Response:
        """The form, with a fresh CSRF token bound to the visitor's cookie (set if missing)."""
        nonce = request.cookies.get(CSRF_COOKIE) or ""
        if len(nonce) < 16 or len(nonce) > 64:
            nonce = secrets.token_urlsafe(24)
        token = make_token(self.secret, CSRF_PURPOSE, nonce, ttl=CSRF_TTL_S)
        response = self.page("subscribe.html", status, action="", topics=self.topics,
                             chosen=list(chosen), email=email, name=name, error=error,
                             csrf=token)
        response.set_cookie(CSRF_COOKIE, nonce, max_age=CSRF_TTL_S, httponly=True,
                            samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    def csrf_ok(self, request: Request, token: str) -> bool:
        nonce = request.cookies.get(CSRF_COOKIE) or ""
        try:
            return bool(nonce) and read_token(self.secrets, CSRF_PURPOSE, token) == nonce.lower()
        except BadToken:
            return False


class TooLarge(Exception):
    """The request body passed its cap."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, read as it streams in (chunked or not); TooLarge as soon as it passes
    `limit` bytes, without reading the rest. A Content-Length over the cap is refused before
    reading anything."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        parts.append(chunk)
    return b"".join(parts)


async def read_signed_body(request: Request, timestamp: str, limit: int) -> tuple[bytes, bytes]:
    """(body, SHA-256 of timestamp + body) of a webhook request. The body streams into a
    spooled file (in memory up to SPOOL_BYTES, then on disk) while it is hashed, so an
    unverified body never occupies more than that in memory; TooLarge past `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    hasher = hashlib.sha256(timestamp.encode("ascii", "replace"))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge()
            hasher.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        return spool.read(), hasher.digest()


async def _form(request: Request) -> dict[str, list[str]] | None:
    """The urlencoded form, or None when it is too large."""
    try:
        body = await read_capped(request, MAX_FORM_BYTES)
    except TooLarge:
        return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def create_app(pub: Publication, *, engine: Engine | None = None,
               limits: optin.Limits | None = None, archive: Path | None = None,
               prune: bool = True) -> Starlette:
    """The public app for `pub` (NEWSLETTER_SECRET of 32 characters or more is required);
    `archive` is the published folder to serve (default: the local publish folder of
    newsletter.yaml). With `prune`, old webhook events are pruned at start-up and then hourly."""
    settings = pub.settings
    keys = signing_secrets(settings.secret, settings.previous_secrets)
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
    side = PublicSide(pub=pub, engine=engine, secrets=keys, env=templates(), limits=limits,
                      webhook_key=key, topics=topics_of(pub),
                      limits_of_rules=Thresholds.of(pub.config.tracking))

    def token_email(request: Request, purpose: str) -> str | None:
        try:
            return read_token(side.secrets, purpose, request.path_params["token"])
        except BadToken:
            return None

    async def healthz(request: Request) -> Response:
        def ping() -> None:
            with side.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        report = {"database": "ok", "secret": "set" if side.secret else "missing",
                  "webhook_key": "loaded" if side.webhook_key is not None else "missing"}
        try:
            await run_in_threadpool(ping)
        except SQLAlchemyError as exc:
            log.error("health check: database unavailable (%s)", type(exc).__name__)
            report["database"] = "error"
        needs_key = settings.transport == "sendgrid"
        healthy = (report["database"] == "ok" and side.secret
                   and (side.webhook_key is not None or not needs_key))
        return JSONResponse({"status": "ok" if healthy else "unavailable", **report},
                            200 if healthy else 503, headers={"Cache-Control": "no-store"})

    archive_path = archive_mount(pub.config)
    archive_link = archive_path.lstrip("/") or "./"  # relative: works behind a path prefix

    async def home(request: Request) -> Response:
        return side.page("home.html", archive=archive_link, subscribe="subscribe")

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
        if not await side.allow(request):
            return _too_many(side)
        return await side.start_signup(email, "", [])

    async def subscribe_form(request: Request) -> Response:
        return side.subscribe_page(request)

    async def subscribe(request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return Response("Request too large", 413, headers=HEADERS)
        first = {k: (v[0] if v else "") for k, v in form.items()}
        raw_email, name = first.get("email", "").strip(), clean_name(first.get("name"))[0]
        chosen = optin.clean_topics(form.get("topics", []), side.topics)
        if not side.csrf_ok(request, first.get("csrf", "")):
            return side.subscribe_page(request, 403, chosen=chosen, email=raw_email, name=name,
                                       error="The form had expired. Please send it again.")
        if first.get("website"):  # the honeypot: answer as if all went well, do nothing
            return side.check_inbox(raw_email)
        try:
            email = normalize_email(raw_email)
        except ValueError:
            return side.subscribe_page(request, 400, chosen=chosen, email=raw_email, name=name,
                                       error="Please enter a valid email address.")
        if not await side.allow(request):
            return _too_many(side)
        return await side.start_signup(email, name, chosen)

    async def confirm_page(request: Request) -> Response:
        email = token_email(request, optin.CONFIRM_PURPOSE)
        if email is None:
            return side.invalid("The confirmation link is altered or has expired. "
                                "Subscribe again to get a new one.")
        return side.page("confirm.html", email=email, action="")

    async def confirm(request: Request) -> Response:
        expired = ("The confirmation link is altered or has expired. Subscribe again to get a "
                   "new one.")
        try:
            info = read_token_info(side.secrets, optin.CONFIRM_PURPOSE,
                                   request.path_params["token"])
        except BadToken:
            return side.invalid(expired)
        outcome = await run_in_threadpool(optin.confirm_signup, side.engine, info.subject,
                                          info.issued_ms, None, side.secret)
        if outcome == optin.Confirmation.UNKNOWN:
            return side.invalid(expired)
        if outcome == optin.Confirmation.CONFIRMED:
            await run_in_threadpool(release_quietly, side.pub, info.subject)
        return side.page("confirmed.html", email=info.subject,
                         already=outcome == optin.Confirmation.ALREADY)

    async def webhook(request: Request) -> Response:
        if side.webhook_key is None:
            return JSONResponse({"error": "SENDGRID_WEBHOOK_PUBLIC_KEY is not set"}, 503)
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        try:
            check_headers(signature, timestamp)
            body, digest = await read_signed_body(request, timestamp or "", MAX_WEBHOOK_BYTES)
            verify_digest(side.webhook_key, signature, timestamp, digest)
        except TooLarge:
            return JSONResponse({"error": "body too large"}, 413,
                                headers={"Connection": "close"})
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

    async def housekeeping() -> None:
        """Prune old webhook events and finished throttle windows, now and once an hour."""
        while True:
            try:
                report = await run_in_threadpool(prune_events, side.engine,
                                                 settings.events_keep_days)
                await run_in_threadpool(optin.forget_old_clients, side.engine, side.limits)
                if report.deleted:
                    log.info("%s", report.summary())
            except SQLAlchemyError:
                log.exception("pruning old webhook events failed; retrying in an hour")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def click(request: Request) -> Response:
        def find() -> tracking.Click | None:
            with side.engine.connect() as conn:
                return tracking.resolve_click(conn, side.secrets, request.path_params["token"])

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
        task = asyncio.create_task(housekeeping()) if prune else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owned:
                side.engine.dispose()

    archive_folder = archive if archive is not None else local_folder(pub)
    app = Starlette(
        routes=[
            *([] if archive_path == "/" else [Route("/", home, methods=["GET", "HEAD"])]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe_now, methods=["POST"]),
            Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
            Route("/subscribe", subscribe_form, methods=["GET"]),
            Route("/subscribe", subscribe, methods=["POST"]),
            Route("/confirm/{token}", confirm_page, methods=["GET"]),
            Route("/confirm/{token}", confirm, methods=["POST"]),
            Route("/webhooks/sendgrid", webhook, methods=["POST"]),
            *webhook_routes(lambda request: side),
            *preference_routes(side, _form),
            *archive_routes(archive_folder, archive_path),
            Route("/c/{token}", click, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(AccessLog, keep_whole=archive_path if archive_path != "/" else None)
    app.state.public = side
    return app


ROOT_VARIABLE = "NEWSLETTER_SERVE_ROOT"  # tells each worker process which publication to load


def app_from_environment() -> Starlette:
    """The app factory each `serve --workers N` process calls (uvicorn imports it by name)."""
    import os

    return create_app(Publication.load(Path(os.environ[ROOT_VARIABLE])))


def _client(request: Request) -> str:
    """The visitor's IP (uvicorn puts the proxy's X-Forwarded-For here when trusted)."""
    return request.client.host if request.client else "unknown"


def _too_many(side: PublicSide) -> Response:
    response = side.page("invalid.html", 429, message="Too many requests from your network; "
                         "please try again in an hour.", subscribe="../subscribe")
    response.headers["Retry-After"] = str(side.limits.ip_window_s)
    return response


def serve(pub: Publication, host: str, port: int, *, forwarded_allow_ips: str,
          log_level: str = "info", ready: Callable[[], None] | None = None, workers: int = 1,
          graceful_timeout: int = 30) -> None:
    """Run the app with uvicorn until SIGINT/SIGTERM (`ready` runs once the app is made).

    On a signal uvicorn stops accepting, lets requests in flight finish (at most
    `graceful_timeout` seconds), then closes the database pool. With `workers` > 1, uvicorn
    runs that many processes on one socket, each making the app with app_from_environment.
    """
    import os
    import signal
    import sys

    import uvicorn

    app = create_app(pub)  # with workers too: refuse bad settings here, once, before forking
    if ready:
        ready()
    options: dict[str, Any] = dict(
        host=host, port=port, proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level, server_header=False, access_log=False,
        log_config=log_config(log_level), timeout_graceful_shutdown=graceful_timeout)
    # uvicorn re-raises the signal it stopped on; a SIGTERM stop is a clean one: exit 0
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    if workers > 1:
        app.state.public.engine.dispose()  # each worker opens its own pool
        os.environ[ROOT_VARIABLE] = str(pub.root)
        uvicorn.run("newsletter.web.public:app_from_environment", factory=True,
                    workers=workers, **options)
    else:
        uvicorn.run(app, **options)
