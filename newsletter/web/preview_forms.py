"""The preview's form posts: their CSRF defence, the Send test form and the Approve button.

Every POST must come from the preview page itself (its Origin, or lacking one its Referer, is
this server) and carry the page's token in the one CSRF scheme of every form we serve
(newsletter.web.csrf), bound to the session cookie and signed with a key made when the server
started (the preview needs no NEWSLETTER_SECRET). `send_test` then mails a [TEST] copy of the
last good build to the typed addresses (or the publication's test recipients), personalised as
the subscriber the page previews ("Preview as"), through the chosen transport.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.compose.fields import check_address, split_addresses
from newsletter.core.errors import FailedError, NewsletterError
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient
from newsletter.core.settings import TRANSPORTS
from newsletter.core.tokens import Keys
from newsletter.web import adapters
from newsletter.web.csrf import Csrf
from newsletter.web.live import LiveBuild

SESSION_COOKIE = "newsletter_preview"
MAX_FORM_BYTES = 16 * 1024
MAX_TEST_ADDRESSES = 10


def preview_csrf() -> Csrf:
    """The preview's CSRF tokens: the shared scheme, keyed per process."""
    return Csrf(Keys((secrets.token_urlsafe(32),)), cookie=SESSION_COOKIE)


def same_origin(request: Request) -> bool:
    """True when the request's Origin (or, lacking it, Referer) is this server itself."""
    host = request.headers.get("host", "")
    expected = f"{request.url.scheme}://{host}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == expected
    referer = request.headers.get("referer", "")
    return referer == expected or referer.startswith(expected + "/")


def fail(message: str, status: int) -> Response:
    return JSONResponse({"ok": False, "message": message}, status_code=status)


async def checked_form(request: Request, csrf: Csrf) -> dict[str, str] | Response:
    """The posted form's fields, or the refusal to answer with (cross-site, too large, no
    valid token)."""
    if not same_origin(request):
        return fail("cross-site request refused", 403)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return fail("form too large", 413)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if not csrf.valid(request, form.get("csrf")):
        return fail("session expired or invalid form token; reload the page", 403)
    return form


def parse_addresses(raw: str) -> list[str]:
    """Addresses typed into the form (commas, semicolons or spaces); ValueError if one is bad."""
    found = split_addresses(raw)
    if len(found) > MAX_TEST_ADDRESSES:
        raise ValueError(f"at most {MAX_TEST_ADDRESSES} addresses per test send")
    return [check_address(address) for address in found]


def describe_send(result: Any, to: list[str], transport: str, recipient: Recipient) -> str:
    """One line for the page about a finished test send."""
    summary = getattr(result, "summary", None)
    line = summary() if callable(summary) else ""
    if not isinstance(line, str) or not line:
        line = f"Sent a test to {', '.join(to) or 'the test recipients'} via {transport}."
    if recipient != SAMPLE_RECIPIENT:
        line += f" Personalised as {recipient.name or recipient.email}."
    return line


async def send_test(request: Request, live: LiveBuild, csrf: Csrf) -> Response:
    """POST /send-test: fields `csrf`, `to`, `transport` and `as` (the previewed subscriber)."""
    form = await checked_form(request, csrf)
    if isinstance(form, Response):
        return form
    snapshot = live.good
    if snapshot is None or not live.ok:
        return fail("the issue does not build; fix the problems shown first", 409)
    try:
        to = parse_addresses(form.get("to", "")) or None
    except ValueError as exc:
        return fail(str(exc), 400)
    transport = form.get("transport") or snapshot.pub.settings.transport
    if transport not in TRANSPORTS:
        return fail(f"unknown transport '{transport}'", 400)
    if to is None and not snapshot.pub.config.test_recipients:
        return fail("no addresses given and no test_recipients in newsletter.yaml", 400)
    pub, build = snapshot.pub, snapshot.build
    try:
        recipient = await anyio.to_thread.run_sync(
            adapters.find_recipient, pub, form.get("as", ""))
        result = await anyio.to_thread.run_sync(
            adapters.send_test, pub, build, to, transport, recipient)
    except FailedError as exc:  # some copies were not accepted
        return fail(exc.format_message(), 502)
    except NewsletterError as exc:  # bad settings or addresses
        return fail(exc.format_message(), 400)
    except Exception as exc:  # a transport failure: report it on the page
        return fail(f"{type(exc).__name__}: {exc}", 502)
    recipients = to or list(pub.config.test_recipients)
    return JSONResponse({"ok": True,
                         "message": describe_send(result, recipients, transport, recipient)})


async def approve(request: Request, live: LiveBuild, csrf: Csrf) -> Response:
    """POST /approve: fields `csrf` and `name`; records the approval of the build on show
    (newsletter.dispatch.approval: after the checks, of this exact content)."""
    form = await checked_form(request, csrf)
    if isinstance(form, Response):
        return form
    snapshot = live.good
    if snapshot is None or not live.ok:
        return fail("the issue does not build; fix the problems shown first", 409)
    from newsletter.dispatch.approval import approve as record

    try:
        state = await anyio.to_thread.run_sync(
            record, snapshot.pub, snapshot.build, form.get("name", ""))
    except NewsletterError as exc:  # failing checks, no name
        return fail(exc.format_message(), 409)
    return JSONResponse({"ok": True, "message": state.describe()})
