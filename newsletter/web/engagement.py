"""Where engagement comes in: SendGrid's signed Event Webhook and our own tracked-link redirects.

Both hand their events, in the neutral vocabulary (newsletter.providers.events), to
newsletter.events.apply, which checks the erasure list, records each event once and applies
what the one policy says it means to the subscriber.

The webhook body is capped while it streams in (chunked bodies included), before the signature
is checked, and waits on disk beyond SPOOL_BYTES until it is verified; a verified body is
decoded one event at a time and refused past MAX_EVENTS (newsletter.providers.sendgrid.webhook).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from newsletter.events import tracking
from newsletter.events.apply import apply_batch
from newsletter.providers.sendgrid.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignature,
    check_headers,
    verify_digest,
)
from newsletter.providers.sendgrid.webhook import TooManyEvents, decode_events, parse_events
from newsletter.web.side import HEADERS, TooLarge, capped_chunks, side_of

log = logging.getLogger("newsletter.public")

MAX_WEBHOOK_BYTES = 20 * 1024 * 1024
SPOOL_BYTES = 1024 * 1024  # webhook bodies beyond this wait on disk until verified


async def read_signed_body(request: Request, timestamp: str, limit: int) -> tuple[bytes, bytes]:
    """(body, SHA-256 of timestamp + body) of a webhook request. The body streams into a
    spooled file (in memory up to SPOOL_BYTES, then on disk) while it is hashed, so an
    unverified body never occupies more than that in memory; TooLarge past `limit`."""
    hasher = hashlib.sha256(timestamp.encode("ascii", "replace"))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        async for chunk in capped_chunks(request, limit):
            hasher.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        return spool.read(), hasher.digest()


async def webhook(request: Request) -> Response:
    """POST /webhooks/sendgrid: verify, decode, apply; answer a summary."""
    side = side_of(request)
    if side.webhook_key is None:
        return JSONResponse({"error": "SENDGRID_WEBHOOK_PUBLIC_KEY is not set"}, 503)
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    try:
        check_headers(signature, timestamp)
        body, digest = await read_signed_body(request, timestamp or "", MAX_WEBHOOK_BYTES)
        verify_digest(side.webhook_key, signature, timestamp, digest)
    except TooLarge:
        return JSONResponse({"error": "body too large"}, 413, headers={"Connection": "close"})
    except BadSignature as exc:
        return JSONResponse({"error": f"rejected: {exc}"}, 403)
    try:
        payload = decode_events(body)
    except TooManyEvents as exc:
        return JSONResponse({"error": str(exc)}, 413)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return JSONResponse({"error": "the body is not a JSON array of events"}, 400)
    del body
    events, ignored = parse_events(payload)
    try:
        report = await run_in_threadpool(apply_batch, side.engine, events,
                                         limits=side.thresholds, secrets=side.keys.secrets,
                                         soft=side.soft_bounces)
    except SQLAlchemyError as exc:
        log.error("webhook: could not store %d events (%s); SendGrid will retry",
                  len(events), type(exc).__name__)
        return JSONResponse({"error": "database unavailable; retry later"}, 503)
    report.received, report.ignored = len(payload), ignored
    return JSONResponse(report.as_dict())


async def click(request: Request) -> Response:
    """GET/HEAD /c/{token}: record a human-or-machine click and redirect to that link."""
    side = side_of(request)

    def find() -> tracking.Click | None:
        with side.engine.connect() as conn:
            return tracking.resolve_click(conn, side.keys, request.path_params["token"])

    found = await run_in_threadpool(find)
    if found is None:
        return side.invalid("This link is altered or is not a link of this newsletter.", 404)
    if request.method == "HEAD":  # link checkers and scanners peek; people GET
        return Response(status_code=302, headers={**HEADERS, "Location": found.url})
    try:
        await run_in_threadpool(tracking.record_click, side.engine, found,
                                request.headers.get("user-agent"),
                                request.client.host if request.client else None,
                                side.thresholds, side.keys.secrets)
    except SQLAlchemyError as exc:  # the reader still gets where they wanted to go
        log.error("click: could not record a click of send %s (%s)", found.send_id,
                  type(exc).__name__)
    return Response(status_code=302, headers={**HEADERS, "Location": found.url})


ROUTES = [
    Route("/webhooks/sendgrid", webhook, methods=["POST"]),
    Route("/c/{token}", click, methods=["GET"]),
]
