"""`newsletter serve`: the public side, a Starlette app to run behind a reverse proxy.

Routes (each handler lives with its idea; this module assembles them):
- `GET /`: a small page linking to the archive and the sign-up form;
- `GET /healthz`: database reachable, secret set, webhook key loaded; 503 when the database
  does not answer (or the webhook key is missing while NEWSLETTER_TRANSPORT is sendgrid);
- `GET <archive path>/...`: the published archive (newsletter.web.site);
- unsubscribe, resubscribe, sign-up and confirmation (newsletter.web.consent);
- `POST /webhooks/sendgrid` and the tracked links `GET /c/{token}` (newsletter.web.engagement);
- `POST /webhooks/ses`: Amazon SES's events through SNS (newsletter.web.ses_webhook);
- `/preferences/{token}`: the subscriber's preference page (newsletter.web.preferences).

GETs never change state. Tokens are HMAC-signed and checked with the rotation list
(NEWSLETTER_SECRET, then NEWSLETTER_SECRET_PREVIOUS) through `newsletter.core.tokens.Keys`;
forms carry the one CSRF token of newsletter.web.csrf. Pages look the same whether or not an
address is subscribed; a bad token gets 400 and changes nothing. The sign-up throttles live in
the database, shared by every `serve` process. While serving, webhook events older than
NEWSLETTER_EVENTS_KEEP_DAYS and sign-up requests left unconfirmed for
NEWSLETTER_SIGNUPS_KEEP_DAYS are pruned once an hour; with `bounces:` in
newsletter.yaml the bounce mailbox is read every few minutes (newsletter.web.public_bounces).

A `public_url` with a path (https://example.org/monitor/) works whether the proxy passes that
path on or strips it: `PathPrefix` serves every route under it too, and pages link under it.

To add a route: write a module-level `async def handler(request)` (it finds the app's state with
`newsletter.web.side.side_of(request)`) and list a `Route` for it in its module's ROUTES.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.audience.erasure import erasure_key
from newsletter.compose.publication import Publication
from newsletter.core.errors import InputError, Problem
from newsletter.core.tokens import Keys, signing_secrets
from newsletter.db.engine import write_connection
from newsletter.events import optin
from newsletter.events.classify import Thresholds
from newsletter.events.prune import prune_events
from newsletter.providers.sendgrid.signature import load_public_key
from newsletter.web import (
    consent,
    engagement,
    preferences,
    public_bounces,
    public_sending,
    public_webhooks,
    ses_webhook,
)
from newsletter.web.publish import local_folder
from newsletter.web.side import PublicSide, side_of, templates
from newsletter.web.site import AccessLog, archive_mount, archive_routes, log_config

log = logging.getLogger("newsletter.public")

PRUNE_EVERY_S = 3600


async def healthz(request: Request) -> Response:
    side = side_of(request)

    def ping() -> None:
        with side.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    report = {"database": "ok", "secret": "set",
              "webhook_key": "loaded" if side.webhook_key is not None else "missing"}
    try:
        await run_in_threadpool(ping)
    except SQLAlchemyError as exc:
        log.error("health check: database unavailable (%s)", type(exc).__name__)
        report["database"] = "error"
    needs_key = side.pub.settings.transport == "sendgrid"
    healthy = report["database"] == "ok" and (side.webhook_key is not None or not needs_key)
    return JSONResponse({"status": "ok" if healthy else "unavailable", **report},
                        200 if healthy else 503, headers={"Cache-Control": "no-store"})


async def home(request: Request) -> Response:
    side = side_of(request)
    archive = side.url(archive_mount(side.pub.config))
    return side.page("home.html", archive=archive, subscribe=side.url("subscribe"))


async def housekeeping(side: PublicSide) -> None:
    """Prune old webhook events, unconfirmed sign-ups and finished throttle windows, now and
    once an hour."""
    settings = side.pub.settings
    while True:
        try:
            report = await run_in_threadpool(prune_events, side.engine,
                                             settings.events_keep_days,
                                             signups_keep_days=settings.signups_keep_days)
            await run_in_threadpool(optin.forget_old_clients, side.engine, side.limits)
            if report.deleted or report.signups:
                log.info("%s", report.summary())
        except SQLAlchemyError as exc:
            log.error("pruning failed (%s); retrying in an hour", type(exc).__name__)
        await asyncio.sleep(PRUNE_EVERY_S)


class PathPrefix:
    """ASGI middleware: a request under `prefix` (public_url's path, e.g. /monitor/) is served
    as if the proxy had stripped it, with the prefix kept as the root path; `/monitor` answers
    with a redirect to `/monitor/`. Requests without it are served as they are."""

    def __init__(self, app: ASGIApp, prefix: str):
        self.app, self.prefix = app, prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.prefix:
            path: str = scope["path"]
            if path == self.prefix:
                location = (self.prefix + "/").encode()
                await send({"type": "http.response.start", "status": 301,
                            "headers": [(b"location", location), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            if path.startswith(self.prefix + "/"):
                scope = {**scope, "path": path[len(self.prefix):],
                         "raw_path": path[len(self.prefix):].encode(),
                         "root_path": scope.get("root_path", "") + self.prefix}
        await self.app(scope, receive, send)


def _webhook_key(value: str | None) -> Any:
    if not value:
        return None
    try:
        return load_public_key(value)
    except ValueError as exc:
        raise InputError(Problem("SENDGRID_WEBHOOK_PUBLIC_KEY", None, str(exc))) from None


def _check_erasure_list(engine: Engine, keys: Keys) -> None:
    """Refuse to start when the erasure list cannot be read with these secrets (EraseKeyMissing,
    an InputError); after a rotation, wrap its key under the new secret while the old one is
    still accepted. A database that does not answer is left to /healthz."""
    try:
        with write_connection(engine) as conn, conn.begin():
            erasure_key(conn, keys.secrets)
    except SQLAlchemyError as exc:
        log.error("could not read the erasure list's key (%s)", type(exc).__name__)


def create_app(pub: Publication, *, engine: Engine | None = None,
               limits: optin.Limits | None = None, archive: Path | None = None,
               prune: bool = True, bounces: bool = True, sending: bool = True) -> Starlette:
    """The public app for `pub` (NEWSLETTER_SECRET of 32 characters or more is required);
    `archive` is the published folder to serve (default: the local publish folder of
    newsletter.yaml). With `prune`, old events and sign-up requests are pruned at start-up and
    then hourly;
    with `bounces`, the bounce mailbox is read (newsletter.web.public_bounces); with `sending`,
    the welcome goes out and due subject tests finish (newsletter.web.public_sending)."""
    settings = pub.settings
    keys = Keys.of(signing_secrets(settings.secret, settings.previous_secrets))
    key = _webhook_key(settings.webhook_public_key)
    owned = engine is None
    if engine is None:
        from newsletter.db import open_database

        engine = open_database(settings)
    _check_erasure_list(engine, keys)
    side = PublicSide(pub=pub, engine=engine, keys=keys, env=templates(),
                      limits=limits or optin.Limits(), webhook_key=key,
                      topics=dict(pub.config.topics),
                      thresholds=Thresholds.of(pub.config.tracking))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(housekeeping(side))] if prune else []
        if bounces and public_bounces.wanted(pub):  # the bounce mailbox, every few minutes
            tasks.append(asyncio.create_task(public_bounces.read_bounces(pub, side.engine)))
        stop = threading.Event()  # the welcome and subject tests (newsletter.web.public_sending)
        if sending:
            tasks += [asyncio.create_task(work) for work in public_sending.sending_tasks(
                pub, side.engine, side.welcome_wake, stop)]
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owned:
                side.engine.dispose()

    archive_path = archive_mount(pub.config)
    folder = archive if archive is not None else local_folder(pub)
    app = Starlette(
        routes=[
            *([] if archive_path == "/" else [Route("/", home, methods=["GET", "HEAD"])]),
            Route("/healthz", healthz, methods=["GET"]),
            *consent.ROUTES,
            *engagement.ROUTES,
            *public_webhooks.ROUTES,
            *ses_webhook.ROUTES,
            *preferences.ROUTES,
            *archive_routes(folder, archive_path),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(AccessLog, keep_whole=archive_path if archive_path != "/" else None)
    app.add_middleware(PathPrefix, prefix=side.base)
    app.state.public = side
    return app


ROOT_VARIABLE = "NEWSLETTER_SERVE_ROOT"  # tells each worker process which publication to load


def app_from_environment() -> Starlette:
    """The app factory each `serve --workers N` process calls (uvicorn imports it by name)."""
    import os

    return create_app(Publication.load(Path(os.environ[ROOT_VARIABLE])))


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
