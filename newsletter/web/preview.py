"""`newsletter preview`: a local Starlette app for judging an issue before it is sent.

Routes: `/` the page; `/email.html` and `/email.txt` the email personalised for `?as=EMAIL`
(`/email.html?scheme=dark` as a client in dark mode shows it);
`/web/` the web copy and its images; `/report.html` the engagement report `newsletter report`
wrote (the Report tab); `/editions/SLUG/email.html` another edition of the
issue (other languages, shown side by side in the Editions tab); `/api/state` (polled for
live reload), `/api/parts` (the page's server-rendered panels), `/api/recipients?q=`,
`POST /send-test` and `POST /approve` (sign-off of the build on show).
The email is served from memory; the images it links at its archive URL are served locally
(newsletter.web.preview_pages). The build and its live reload are newsletter.web.live; the
form posts and their CSRF defence newsletter.web.preview_forms.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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

from newsletter.compose import build_issue, i18n
from newsletter.compose.editions import edition_group
from newsletter.core.errors import NewsletterError
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient
from newsletter.core.settings import TRANSPORTS
from newsletter.web import ASSETS, adapters, asset_templates
from newsletter.web.live import LiveBuild, Snapshot
from newsletter.web.preview_forms import approve, preview_csrf, send_test
from newsletter.web.preview_pages import frame_html, personalised

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
NO_STORE = {"Cache-Control": "no-store"}


class PreviewApp:
    """The routes, bound to one LiveBuild."""

    def __init__(self, live: LiveBuild) -> None:
        self.live = live
        self.csrf = preview_csrf()

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

    # -- pages (plain `def` routes run in a worker thread: they may query the database) --------

    async def page(self, request: Request) -> Response:
        from newsletter.dispatch.approval import default_approver

        session_id, csrf = self.csrf.issue(request)
        snapshot = self.snapshot()
        settings = snapshot.pub.settings if snapshot else None
        context = self.context(SAMPLE_RECIPIENT) | {
            "approval": await anyio.to_thread.run_sync(self.approval),
            "approver": default_approver(snapshot.pub.root) if snapshot else "",
            "csrf": csrf,
            "transports": TRANSPORTS,
            "transport": settings.transport if settings else "outbox",
            "sample": SAMPLE_RECIPIENT,
            "test_recipients": snapshot.pub.config.test_recipients if snapshot else [],
        }
        html = asset_templates().get_template("preview.html").render(context)
        response = HTMLResponse(html, headers=NO_STORE)
        self.csrf.remember(response, request, session_id)
        return response

    def email_html(self, request: Request) -> Response:
        snapshot = self.snapshot()
        if snapshot is None:
            return HTMLResponse(NO_BUILD_PAGE)
        html = frame_html(snapshot.pub, snapshot.build, self.recipient(request), "/web/",
                          dark=request.query_params.get("scheme") == "dark")
        return HTMLResponse(html, headers=NO_STORE)

    def email_text(self, request: Request) -> Response:
        snapshot = self.snapshot()
        if snapshot is None:
            return PlainTextResponse("No successful build yet.")
        _, text = personalised(snapshot.pub, snapshot.build, self.recipient(request))
        return PlainTextResponse(text, headers=NO_STORE)

    async def web_copy(self, request: Request) -> Response:
        snapshot = self.snapshot()
        if snapshot is None:
            return HTMLResponse(NO_BUILD_PAGE)
        name = request.path_params.get("name", "")
        if not name:
            build = snapshot.build
            return HTMLResponse(frame_html(snapshot.pub, build, SAMPLE_RECIPIENT, "/web/",
                                           html=build.web_html))
        asset = snapshot.build.assets.get(name)
        if asset is None or not asset.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(asset)

    def edition(self, request: Request) -> Response:
        """Another edition of the issue, built on request, personalised as `?as=` (the
        sample reader by default), dark with `?scheme=dark`."""
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
        html = frame_html(snapshot.pub, build, self.recipient(request), f"/editions/{slug}/",
                          dark=request.query_params.get("scheme") == "dark")
        return HTMLResponse(html, headers=NO_STORE)

    async def report(self, request: Request) -> Response:
        """dist/<slug>/report.html, written by `newsletter report` (the Report tab)."""
        snapshot, slug = self.snapshot(), self.live.issue_dir.name
        page = snapshot.pub.dist_dir(slug) / "report.html" if snapshot else None
        if page is None or not page.is_file():
            return HTMLResponse(NO_REPORT_PAGE.format(slug=slug),
                                headers=NO_STORE)
        return FileResponse(page, headers=NO_STORE)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("preview.css", "preview.js"):
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(ASSETS / name, headers=NO_STORE)

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
            headers=NO_STORE,
        )

    def api_parts(self, request: Request) -> Response:
        recipient = self.recipient(request)
        body = self.parts(recipient) | {"version": self.live.version,
                                        "approval": self.approval()}
        return JSONResponse(body, headers=NO_STORE)

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
        return await send_test(request, self.live, self.csrf)

    async def approve(self, request: Request) -> Response:
        return await approve(request, self.live, self.csrf)


def create_app(root: Path, issue_dir: Path, *, watch: bool = True,
               subjects: tuple[str, ...] = ()) -> Starlette:
    """The preview app for the issue in `issue_dir` of the publication at `root` (with the
    `subjects` of a subject test checked and shown in the inbox view)."""
    live = LiveBuild(root=root, issue_dir=issue_dir, subjects=tuple(subjects))
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


def serve(root: Path, issue_dir: Path, port: int, subjects: tuple[str, ...] = ()) -> None:
    """Run the preview on 127.0.0.1:`port` until interrupted."""
    import uvicorn

    app = create_app(root, issue_dir, subjects=subjects)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
