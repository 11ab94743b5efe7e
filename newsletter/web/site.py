"""The published archive served by `newsletter serve`, and its privacy-minded access log.

`archive_routes` serves the local publish folder (see newsletter.web.publish) under the path that
`archive_url` has inside `public_url`: files only (a folder answers with its index.html, never
a listing), no dot-files, nothing outside the folder (symlinks are resolved and checked), with
the Content-Type and Cache-Control that publish.py gives every published file.

`AccessLog` writes one line per request without personal data: no client address, no query
string, and any path segment that could carry a token or an email address cut short. No code
of ours logs an address; `RedactAddresses`, on every handler `serve` sets up, also takes
addresses out of what others log (a library's exception text, a traceback).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.compose.schema import PublicationConfig
from newsletter.web.publish import cache_control, content_type

access_log = logging.getLogger("newsletter.access")
ARCHIVE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
KEEP_CHARS = 6  # of a long path segment (a token) in the access log


def archive_mount(config: PublicationConfig) -> str:
    """The path the archive is served under: archive_url's path inside public_url, or /archive/."""
    if config.archive_url.startswith(config.public_url):
        return "/" + config.archive_url[len(config.public_url):]
    return "/archive/"


def _not_found() -> Response:
    return PlainTextResponse("Not Found", 404, headers=ARCHIVE_HEADERS)


def archive_routes(folder: Path, mount: str) -> list[Route]:
    """GET/HEAD routes serving `folder` under `mount` (which ends with '/')."""

    async def serve_file(request: Request) -> Response:
        rel = request.path_params.get("path", "")
        parts = rel.split("/")
        if any(p.startswith(".") or "\\" in p or "\0" in p for p in parts if p) or \
                any(p == "" for p in parts[:-1]):
            return _not_found()
        base = folder.resolve()
        path = base.joinpath(*[p for p in parts if p])
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return _not_found()
        if not real.is_relative_to(base):
            return _not_found()
        if real.is_dir():
            if rel and not rel.endswith("/"):
                return RedirectResponse(f"{_root(request)}{mount}{rel}/", 301,
                                        headers=ARCHIVE_HEADERS)
            real = real / "index.html"
            rel = rel + "index.html"
            if not real.is_file():
                return _not_found()  # a folder without a page: no listing
        if not real.is_file():
            return _not_found()
        headers = {**ARCHIVE_HEADERS, "Cache-Control": cache_control(rel)}
        return FileResponse(real, media_type=content_type(real.name), headers=headers)

    routes = [Route(mount + "{path:path}", serve_file, methods=["GET", "HEAD"])]
    if mount != "/":
        routes.insert(0, Route(mount.rstrip("/"), lambda request: RedirectResponse(
            _root(request) + mount, 301, headers=ARCHIVE_HEADERS), methods=["GET", "HEAD"]))
    return routes


def _root(request: Request) -> str:
    """The path prefix a proxy or newsletter.web.public.PathPrefix took off (public_url's
    path), for redirects that must keep it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def redact_path(path: str, keep_whole: str | None = None) -> str:
    """`path` for the log: long segments (tokens) and anything with '@' cut to a stub."""
    if keep_whole and path.startswith(keep_whole) and "@" not in path and ".." not in path:
        return path  # published file names are public
    out = []
    for segment in path.split("/"):
        if "@" in segment or "%40" in segment.lower():
            out.append("…")
        elif len(segment) > 24:
            out.append(segment[:KEEP_CHARS] + "…")
        else:
            out.append(segment)
    return "/".join(out)


class AccessLog:
    """ASGI middleware: `METHOD path status duration` per request, nothing personal."""

    def __init__(self, app: ASGIApp, keep_whole: str | None = None):
        self.app, self.keep_whole = app, keep_whole

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            access_log.info('"%s %s" %d %.0fms', scope["method"],
                            redact_path(scope["path"], self.keep_whole), status,
                            (time.perf_counter() - started) * 1000)


_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)


class RedactAddresses(logging.Filter):
    """Replaces anything that looks like an email address in a record's message and traceback
    with `[address]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _ADDRESS.search(message):
            record.msg, record.args = _ADDRESS.sub("[address]", message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _ADDRESS.sub("[address]", record.exc_text)
        return True


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up plus the access logger above (uvicorn's own access log is off:
    it prints client addresses and whole URLs)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    config["formatters"] = {**LOGGING_CONFIG["formatters"], "plain": {
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}}
    config["handlers"] = {**LOGGING_CONFIG["handlers"], "newsletter": {
        "formatter": "plain", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}}
    config["filters"] = {"redact": {"()": RedactAddresses}}
    config["handlers"] = {name: {**handler, "filters": ["redact"]}
                          for name, handler in config["handlers"].items()}
    config["loggers"]["newsletter"] = {"handlers": ["newsletter"], "level": level.upper(),
                                       "propagate": False}
    return config
