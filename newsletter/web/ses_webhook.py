"""`POST /webhooks/ses`: Amazon SES's events, as Amazon SNS posts them over HTTP(S).

SES publishes a configuration set's events (and an identity's feedback notifications) to an SNS
topic; the topic's HTTPS subscription posts each to this route. The topics accepted are
`ses.topic_arns` in newsletter.yaml (503 while there are none). Each post is one SNS message:

- its body is capped (MAX_BODY_BYTES: SNS messages are at most 256 KB) and must be an SNS
  document (400 otherwise);
- it is verified (newsletter.providers.ses.sns: our topic, the signing certificate from that
  topic's SNS host, signature version 1 or 2, a fresh Timestamp); 403 when it is not genuine,
  503 when the certificate cannot be fetched now (SNS retries);
- a `SubscriptionConfirmation` is confirmed by visiting its SubscribeURL (checked to be the
  topic's SNS host), once; an `UnsubscribeConfirmation` is only acknowledged (nothing is
  re-subscribed on a message's say-so);
- a `Notification` holds one SES record, parsed into neutral events
  (newsletter.providers.ses.events) and applied through newsletter.events.apply, the same
  path and the one policy (newsletter.events.policy) as every provider's events (erasure
  list, human or machine, statuses, soft bounces counted, counts), together with the
  message's id: a message id seen before is a replay and applies nothing. It is answered 200
  (`"replay": true`), because SNS delivers at least once and a duplicate it sends is no
  error; anything but 2xx would make it count a failure. A record that holds nothing usable
  is counted as ignored and answered 200, so SNS does not retry it for an hour. A database
  that does not answer is 503 (SNS retries).

The SNS verifier (with its certificate cache) is made on first use; a test puts its own in
`app.state.sns` (one whose fetcher trusts the test's CA and connects to its stand-in).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from newsletter.events.apply import Replayed, apply_batch, remember_once, token_seen
from newsletter.providers.ses.events import PROVIDER, parse_record
from newsletter.providers.ses.sns import (
    MAX_AGE,
    MAX_AHEAD,
    BadMessage,
    SnsVerifier,
    Unavailable,
    parse_message,
)
from newsletter.web.side import PublicSide, TooLarge, read_capped, side_of

log = logging.getLogger("newsletter.public")

MAX_BODY_BYTES = 1024 * 1024
#: how long a message id is remembered: as long as its message can be accepted at all
WINDOW: dt.timedelta = MAX_AGE + MAX_AHEAD
TYPE_HEADER = "x-amz-sns-message-type"


def verifier_of(request: Request) -> SnsVerifier:
    """The app's SNS verifier (made on first use, for `ses.topic_arns`)."""
    state = request.app.state
    found = getattr(state, "sns", None)
    if found is None:
        found = state.sns = SnsVerifier(side_of(request).pub.config.ses.topic_arns)
    return found


def _unavailable(what: str) -> Response:
    return JSONResponse({"error": f"{what}; retry later"}, 503)


async def _confirm(side: PublicSide, verifier: SnsVerifier, message: dict) -> Response:
    """Visit a verified SubscriptionConfirmation's SubscribeURL, once per message."""
    token = message["MessageId"]
    try:
        if await run_in_threadpool(token_seen, side.engine, PROVIDER, token):
            return JSONResponse({"replay": True, "confirmed": None})
        topic = await run_in_threadpool(verifier.confirm, message)
        await run_in_threadpool(remember_once, side.engine, PROVIDER, token, WINDOW)
    except BadMessage as exc:
        return JSONResponse({"error": f"rejected: {exc}"}, 403)
    except Unavailable as exc:
        log.warning("SNS: could not confirm a subscription (%s)", exc)
        return _unavailable("the subscription could not be confirmed")
    except SQLAlchemyError as exc:
        log.error("SNS: could not record a confirmation (%s)", type(exc).__name__)
        return _unavailable("database unavailable")
    log.info("SNS: confirmed the subscription to %s", topic)
    return JSONResponse({"confirmed": topic})


async def ses_webhook(request: Request) -> Response:
    """POST /webhooks/ses: verify, then confirm or apply; answer a summary."""
    side = side_of(request)
    if not side.pub.config.ses.topic_arns:
        return JSONResponse({"error": "ses.topic_arns is not set in newsletter.yaml"}, 503)
    try:
        body = await read_capped(request, MAX_BODY_BYTES)
    except TooLarge:
        return JSONResponse({"error": "body too large"}, 413, headers={"Connection": "close"})
    try:
        message = parse_message(body)
    except BadMessage as exc:
        return JSONResponse({"error": str(exc)}, 400)
    verifier = verifier_of(request)
    try:
        header = request.headers.get(TYPE_HEADER)
        if header is not None and header != message["Type"]:
            raise BadMessage(f"the {TYPE_HEADER} header does not match the message")
        await run_in_threadpool(verifier.verify, message)
    except BadMessage as exc:
        return JSONResponse({"error": f"rejected: {exc}"}, 403)
    except Unavailable as exc:
        log.warning("SNS: %s", exc)
        return _unavailable("the signing certificate could not be fetched")
    if message["Type"] == "SubscriptionConfirmation":
        return await _confirm(side, verifier, message)
    if message["Type"] == "UnsubscribeConfirmation":
        log.info("SNS: %s no longer posts here", message["TopicArn"])
        return JSONResponse({"unsubscribed": message["TopicArn"]})
    events, ignored = parse_record(message["Message"])
    try:
        report = await run_in_threadpool(
            lambda: apply_batch(side.engine, events,
                                token=(PROVIDER, message["MessageId"], WINDOW),
                                limits=side.thresholds, secrets=side.keys.secrets,
                                soft=side.soft_bounces))
    except Replayed:
        return JSONResponse({"replay": True, "applied": 0})
    except SQLAlchemyError as exc:
        log.error("SNS: could not store %d events (%s); SNS will retry", len(events),
                  type(exc).__name__)
        return _unavailable("database unavailable")
    report.received, report.ignored = len(events) + ignored, ignored
    return JSONResponse(report.as_dict())


ROUTES = [Route("/webhooks/ses", ses_webhook, methods=["POST"])]
