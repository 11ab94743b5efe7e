"""`newsletter preview`: a local Starlette app for judging an issue before it is sent.

Routes: `/` the page; `/email.html` and `/email.txt` the email personalised for `?as=EMAIL`
(`/email.html?scheme=dark` as a client in dark mode shows it);
`/web/` the web copy and its images; `/report.html` the engagement report `newsletter report`
wrote (the Report tab); `/editions/SLUG/email.html` another edition of the
issue (other languages, shown side by side in the Editions tab); `/api/state` (polled for
live reload), `/api/parts` (the page's server-rendered panels), `/api/recipients?q=`,
`POST /send-test` and `POST /approve` (sign-off of the build on show).
The email is served from memory; the hero image, which the email links at its archive URL, is
served locally by rewriting that URL prefix to `/web/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Route

from newsletter.compose import build_issue, i18n, preview_preferences_url, preview_unsubscribe_url
from newsletter.compose.editions import edition_group
from newsletter.compose.schema import check_address, split_addresses
from newsletter.core.errors import FailedError, NewsletterError
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient, personalise
from newsletter.core.settings import TRANSPORTS
from newsletter.web import ASSETS, adapters, add_first, asset_templates, edit_page
from newsletter.web.live import LiveBuild, Snapshot

SESSION_COOKIE = "newsletter_preview"
MAX_FORM_BYTES = 16 * 1024
MAX_TEST_ADDRESSES = 10
DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.I)
NO_REPORT_PAGE = (
    "<!doctype html><meta charset='utf-8'><body style='font:15px system-ui;color:#52606d;"
    "padding:32px;text-align:center'><p>No report yet.</p>"
    "<p>After sending, run <code>newsletter report {slug}</code>; it writes the report shown "
    "here.</p>"
)
NO_BUILD_PAGE = (
    "<!doctype html><meta charset='utf-8'><body style='font:15px system-ui;color:#52606d;"
    "padding:32px;text-align:center'><p>No successful build yet.</p>"
    "<p>Fix the problems listed above; this frame updates by itself.</p>"
)


class Sessions:
    """Per-session CSRF tokens: the token is an HMAC of the session cookie under a process key."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(24)

    def token(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()

    def valid(self, session_id: str | None, token: str | None) -> bool:
        if not session_id or not token:
            return False
        return hmac.compare_digest(self.token(session_id), token)


def same_origin(request: Request) -> bool:
    """True when the request's Origin (or, lacking it, Referer) is this server itself."""
    host = request.headers.get("host", "")
    expected = f"{request.url.scheme}://{host}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == expected
    referer = request.headers.get("referer", "")
    return referer == expected or referer.startswith(expected + "/")


def local_html(snapshot: Snapshot, html: str) -> str:
    """Point the issue's archive URL at the local web copy, and open links in a new tab."""
    prefix = f"{snapshot.pub.config.archive_url}{snapshot.build.slug}/"
    return edit_page(html.replace(prefix, "/web/"),
                     lambda doc: add_first(doc.find("head"), '<base target="_blank">'))


def dark_html(html: str) -> str:
    """The email as a client in dark mode shows it: its prefers-color-scheme: dark rules apply.

    Only the CSS inside <style> elements changes (the dark condition becomes always true).
    """

    def always_dark(doc) -> None:
        for style in doc.iter("style"):
            if style.text and DARK_QUERY.search(style.text):
                style.text = DARK_QUERY.sub("(min-width: 0px)", style.text)

    return edit_page(html, always_dark)


def personalised(snapshot: Snapshot, recipient: Recipient) -> tuple[str, str]:
    """The build's HTML and text parts as `recipient` would receive them."""
    pub = snapshot.pub
    unsubscribe = preview_unsubscribe_url(pub, recipient.email)
    return personalise(snapshot.build.html, snapshot.build.text, recipient, unsubscribe,
                       preview_preferences_url(pub, recipient.email))


def parse_addresses(raw: str) -> list[str]:
    """Addresses typed into the form (commas, semicolons or spaces); ValueError if one is bad."""
    found = split_addresses(raw)
    if len(found) > MAX_TEST_ADDRESSES:
        raise ValueError(f"at most {MAX_TEST_ADDRESSES} addresses per test send")
    return [check_address(address) for address in found]


def describe_send(result: Any, to: list[str] | None, transport: str) -> str:
    """One line for the page about a finished test send."""
    summary = getattr(result, "summary", None)
    if callable(summary):
        summary = summary()
    if isinstance(summary, str) and summary:
        return summary
    if isinstance(result, str) and result:
        return result
    recipients = getattr(result, "recipients", None) or getattr(result, "to", None) or to
    who = ", ".join(recipients) if recipients else "the test recipients"
    return f"Sent a test to {who} via {transport}."


class PreviewApp:
    """The routes, bound to one LiveBuild."""

    def __init__(self, live: LiveBuild) -> None:
        self.live = live
        self.sessions = Sessions()

    # -- helpers -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot | None:
        return self.live.good

    def recipient(self, request: Request) -> Recipient:
        email = request.query_params.get("as", "")
        snapshot = self.snapshot()
        if not email or snapshot is None:
            return SAMPLE_RECIPIENT
        return adapters.find_recipient(snapshot.pub, email)

    def parts(self, recipient: Recipient) -> dict[str, str]:
        """The page's live panels, rendered from the macros in parts.html."""
        module = asset_templates().get_template("parts.html").make_module(self.context(recipient))
        return {
            "status": str(module.status()),
            "problems": str(module.problems()),
            "inbox": str(module.inbox()),
            "checks": str(module.checks()),
        }

    def context(self, recipient: Recipient) -> dict[str, Any]:
        live, snapshot = self.live, self.snapshot()
        return {
            "live": live,
            "snap": snapshot,
            "config": snapshot.pub.config if snapshot else None,
            "build": snapshot.build if snapshot else None,
            "recipient": recipient,
            "slug": live.issue_dir.name,
            "editions": self.editions(),
        }

    def approval(self) -> str:
        """The approvals of the build on show, in one line (the Sign-off card)."""
        from newsletter.dispatch.approval import sign_off

        snapshot = self.snapshot()
        if snapshot is None:
            return ""
        try:
            return sign_off(snapshot.pub, snapshot.build).describe()
        except Exception as exc:  # the database may be unreachable: the page still shows
            return f"approvals unavailable: {exc}"

    def editions(self) -> list[dict[str, str]]:
        """The issue's language editions (itself included) when it has more than one."""
        snapshot = self.snapshot()
        if snapshot is None:
            return []
        group = edition_group(snapshot.pub, snapshot.build.slug)
        if len(group) < 2:
            return []
        return [{"slug": e.slug, "lang": e.language, "dir": e.dir,
                 "name": i18n.language_name(e.language)} for e in group]

    # -- pages (plain `def` routes run in a worker thread: they may query the database) --------

    async def page(self, request: Request) -> Response:
        from newsletter.dispatch.approval import default_approver

        session_id = request.cookies.get(SESSION_COOKIE) or self.sessions.new_id()
        snapshot = self.snapshot()
        settings = snapshot.pub.settings if snapshot else None
        context = self.context(SAMPLE_RECIPIENT) | {
            "approval": await anyio.to_thread.run_sync(self.approval),
            "approver": default_approver(snapshot.pub.root) if snapshot else "",
            "csrf": self.sessions.token(session_id),
            "transports": TRANSPORTS,
            "transport": settings.transport if settings else "outbox",
            "sample": SAMPLE_RECIPIENT,
            "test_recipients": snapshot.pub.config.test_recipients if snapshot else [],
        }
        html = asset_templates().get_template("preview.html").render(context)
        response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict")
        return response

    def email_html(self, request: Request) -> Response:
        snapshot = self.snapshot()
        if snapshot is None:
            return HTMLResponse(NO_BUILD_PAGE)
        html, _ = personalised(snapshot, self.recipient(request))
        if request.query_params.get("scheme") == "dark":
            html = dark_html(html)
        return HTMLResponse(local_html(snapshot, html), headers={"Cache-Control": "no-store"})

    def email_text(self, request: Request) -> Response:
        snapshot = self.snapshot()
        if snapshot is None:
            return PlainTextResponse("No successful build yet.")
        _, text = personalised(snapshot, self.recipient(request))
        return PlainTextResponse(text, headers={"Cache-Control": "no-store"})

    async def web_copy(self, request: Request) -> Response:
        snapshot = self.snapshot()
        if snapshot is None:
            return HTMLResponse(NO_BUILD_PAGE)
        name = request.path_params.get("name", "")
        if not name:
            return HTMLResponse(local_html(snapshot, snapshot.build.web_html))
        asset = snapshot.build.assets.get(name)
        if asset is None or not asset.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(asset)

    def edition(self, request: Request) -> Response:
        """Another edition of the issue, built on request, as the sample reader gets it."""
        snapshot = self.snapshot()
        slug, name = request.path_params["slug"], request.path_params["name"]
        if snapshot is None or slug not in {e["slug"] for e in self.editions()}:
            return PlainTextResponse("not found", status_code=404)
        if slug == snapshot.build.slug:
            build = snapshot.build
        else:
            try:
                build = build_issue(snapshot.pub, slug)
            except NewsletterError as exc:
                return HTMLResponse(f"<pre>{exc.format_message()}</pre>", status_code=409)
        if name != "email.html":
            asset = build.assets.get(name)
            if asset is None or not asset.is_file():
                return PlainTextResponse("not found", status_code=404)
            return FileResponse(asset)
        html, _ = personalise(build.html, build.text, SAMPLE_RECIPIENT,
                              preview_unsubscribe_url(snapshot.pub, SAMPLE_RECIPIENT.email))
        html = html.replace(f"{snapshot.pub.config.archive_url}{slug}/", f"/editions/{slug}/")
        html = re.sub(r"<head([^>]*)>", r'<head\1><base target="_blank">', html, count=1)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def report(self, request: Request) -> Response:
        """dist/<slug>/report.html, written by `newsletter report` (the Report tab)."""
        snapshot, slug = self.snapshot(), self.live.issue_dir.name
        page = snapshot.pub.dist_dir(slug) / "report.html" if snapshot else None
        if page is None or not page.is_file():
            return HTMLResponse(NO_REPORT_PAGE.format(slug=slug),
                                headers={"Cache-Control": "no-store"})
        return FileResponse(page, headers={"Cache-Control": "no-store"})

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("preview.css", "preview.js"):
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(ASSETS / name, headers={"Cache-Control": "no-store"})

    # -- API -----------------------------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        live = self.live
        good = live.good
        return JSONResponse(
            {
                "version": live.version,
                "build": good.number if good else 0,
                "ok": live.ok,
                "problems": len(live.problems),
            },
            headers={"Cache-Control": "no-store"},
        )

    def api_parts(self, request: Request) -> Response:
        recipient = self.recipient(request)
        body = self.parts(recipient) | {"version": self.live.version,
                                        "approval": self.approval()}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def recipients(self, request: Request) -> Response:
        snapshot = self.snapshot()
        query = request.query_params.get("q", "").strip()
        found: list[Recipient] = []
        error = ""
        if snapshot is not None:
            try:
                found = await anyio.to_thread.run_sync(
                    adapters.search_recipients, snapshot.pub, query, 20
                )
            except Exception as exc:  # the database may be missing or not migrated yet
                error = f"subscriber list unavailable: {exc}"
        rows = [{"email": r.email, "name": r.name} for r in found]
        return JSONResponse({"recipients": rows, "error": error})

    async def send_test(self, request: Request) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not same_origin(request):
            return self._fail("cross-site request refused", 403)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return self._fail("form too large", 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not self.sessions.valid(session_id, form.get("csrf")):
            return self._fail("session expired or invalid form token; reload the page", 403)
        snapshot = self.snapshot()
        if snapshot is None or not self.live.ok:
            return self._fail("the issue does not build; fix the problems shown first", 409)
        try:
            to = parse_addresses(form.get("to", "")) or None
        except ValueError as exc:
            return self._fail(str(exc), 400)
        transport = form.get("transport") or snapshot.pub.settings.transport
        if transport not in TRANSPORTS:
            return self._fail(f"unknown transport '{transport}'", 400)
        if to is None and not snapshot.pub.config.test_recipients:
            return self._fail("no addresses given and no test_recipients in newsletter.yaml", 400)
        try:
            result = await anyio.to_thread.run_sync(
                adapters.send_test, snapshot.pub, snapshot.build, to, transport
            )
        except FailedError as exc:  # some copies were not accepted
            return self._fail(exc.format_message(), 502)
        except NewsletterError as exc:  # bad settings or addresses
            return self._fail(exc.format_message(), 400)
        except Exception as exc:  # a transport failure: report it on the page
            return self._fail(f"{type(exc).__name__}: {exc}", 502)
        recipients = to or snapshot.pub.config.test_recipients
        return JSONResponse({"ok": True, "message": describe_send(result, recipients, transport)})

    async def approve(self, request: Request) -> Response:
        """The Approve button: record the approval of the build on show (sign-off)."""
        if not same_origin(request):
            return self._fail("cross-site request refused", 403)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return self._fail("form too large", 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not self.sessions.valid(request.cookies.get(SESSION_COOKIE), form.get("csrf")):
            return self._fail("session expired or invalid form token; reload the page", 403)
        snapshot = self.snapshot()
        if snapshot is None or not self.live.ok:
            return self._fail("the issue does not build; fix the problems shown first", 409)
        from newsletter.dispatch.approval import approve

        try:
            state = await anyio.to_thread.run_sync(
                approve, snapshot.pub, snapshot.build, form.get("name", ""))
        except NewsletterError as exc:  # failing checks, no name
            return self._fail(exc.format_message(), 409)
        return JSONResponse({"ok": True, "message": state.describe()})

    @staticmethod
    def _fail(message: str, status: int) -> Response:
        return JSONResponse({"ok": False, "message": message}, status_code=status)


def create_app(root: Path, issue_dir: Path, *, watch: bool = True) -> Starlette:
    """The preview app for the issue in `issue_dir` of the publication at `root`."""
    live = LiveBuild(root=root, issue_dir=issue_dir)
    view = PreviewApp(live)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(live.rebuild_now)
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            if watch:
                group.start_soon(live.watch, stop)
            yield
            stop.set()
            group.cancel_scope.cancel()

    routes = [
        Route("/", view.page),
        Route("/email.html", view.email_html),
        Route("/email.txt", view.email_text),
        Route("/web/", view.web_copy),
        Route("/web/{name:str}", view.web_copy),
        Route("/report.html", view.report),
        Route("/static/{name:str}", view.static),
        Route("/editions/{slug:str}/{name:str}", view.edition),
        Route("/api/state", view.state),
        Route("/api/parts", view.api_parts),
        Route("/api/recipients", view.recipients),
        Route("/send-test", view.send_test, methods=["POST"]),
        Route("/approve", view.approve, methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.live = live
    return app


def serve(root: Path, issue_dir: Path, port: int) -> None:
    """Run the preview on 127.0.0.1:`port` until interrupted."""
    import uvicorn

    app = create_app(root, issue_dir)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
