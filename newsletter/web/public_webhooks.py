"""`newsletter serve`: the webhooks of Postmark and Mailgun (SendGrid's is in engagement.py).

- `POST /webhooks/postmark`: one event per post, with HTTP basic auth (the credentials written
  into the webhook URL in Postmark: POSTMARK_WEBHOOK_USER, POSTMARK_WEBHOOK_PASSWORD; 503 while
  they are not set, 401 when they do not match).
- `POST /webhooks/mailgun`: one signed event per post (MAILGUN_WEBHOOK_SIGNING_KEY; 503 while
  it is not set, 403 for a bad or stale signature, 406 for a token seen before: Mailgun does
  not retry a 406).

Both cap the body (MAX_BODY_BYTES: a post is one event), parse it with the provider's module
into neutral events and apply them through newsletter.events.apply, the same path as
SendGrid's events; an event that cannot be used is counted as ignored and answered 200, so the
provider does not retry it forever. A database that does not answer is 503 (the provider
retries).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from newsletter.events.apply import Replayed, apply_batch
from newsletter.providers.events import ProviderEvent
from newsletter.web.side import PublicSide, TooLarge, read_capped, side_of

log = logging.getLogger("newsletter.public")

MAX_BODY_BYTES = 256 * 1024


async def _decoded(request: Request) -> Any:
    """The JSON body, or a Response saying why not."""
    try:
        body = await read_capped(request, MAX_BODY_BYTES)
    except TooLarge:
        return JSONResponse({"error": "body too large"}, 413, headers={"Connection": "close"})
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return JSONResponse({"error": "the body is not JSON"}, 400)


async def _apply(side: PublicSide, event: ProviderEvent | None, **kwargs: Any) -> Response:
    events = [event] if event is not None else []
    try:
        report = await run_in_threadpool(lambda: apply_batch(
            side.engine, events, limits=side.thresholds, secrets=side.keys.secrets,
            soft=side.soft_bounces, **kwargs))
    except Replayed:
        return JSONResponse({"error": "this signature token was used before"}, 406)
    except SQLAlchemyError:
        log.exception("webhook: could not store a provider event")
        return JSONResponse({"error": "database unavailable; retry later"}, 503)
    report.received, report.ignored = 1, 1 - len(events)
    return JSONResponse(report.as_dict())


async def postmark(request: Request) -> Response:
    from newsletter.providers.postmark.webhook import credentials_match, parse_event

    side = side_of(request)
    env = side.pub.settings.postmark
    if not env.webhook_user or not env.webhook_password:
        return JSONResponse({"error": "POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD "
                                      "are not set"}, 503)
    if not credentials_match(request.headers.get("authorization"), env.webhook_user,
                             env.webhook_password):
        return JSONResponse({"error": "wrong credentials"}, 401,
                            headers={"WWW-Authenticate": 'Basic realm="webhooks"'})
    payload = await _decoded(request)
    if isinstance(payload, Response):
        return payload
    return await _apply(side, parse_event(payload))


async def mailgun(request: Request) -> Response:
    import datetime as dt

    from newsletter.providers.mailgun.webhook import (
        MAX_AGE_S,
        BadSignature,
        parse_event,
        verify,
    )

    side = side_of(request)
    key = side.pub.settings.mailgun.webhook_signing_key
    if not key:
        return JSONResponse({"error": "MAILGUN_WEBHOOK_SIGNING_KEY is not set"}, 503)
    payload = await _decoded(request)
    if isinstance(payload, Response):
        return payload
    try:
        token, _ = verify(key, payload)
    except BadSignature as exc:
        return JSONResponse({"error": f"rejected: {exc}"}, 403)
    window = dt.timedelta(seconds=MAX_AGE_S)
    return await _apply(side, parse_event(payload), token=("mailgun", token, window))



ROUTES = [Route("/webhooks/postmark", postmark, methods=["POST"]),
          Route("/webhooks/mailgun", mailgun, methods=["POST"])]
