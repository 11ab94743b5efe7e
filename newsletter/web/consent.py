"""Consent pages of `newsletter serve`: unsubscribe (RFC 8058 one-click), resubscribe, the sign-up
form with double opt-in, and its confirmation.

GETs only show a page with a button; every change is a POST. Pages look the same whether or
not an address is subscribed, and a bad token gets 400 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.audience.model import clean_name, normalize_email
from newsletter.core.tokens import BadToken
from newsletter.events import optin
from newsletter.events.suppressions import release_quietly
from newsletter.web.side import (
    PublicSide,
    client_key,
    first_values,
    read_form,
    side_of,
    too_large,
)

EXPIRED = "The confirmation link is altered or has expired. Subscribe again to get a new one."


def confirm_link(side: PublicSide, email: str) -> str:
    """The confirmation URL mailed for a sign-up request of `email`."""
    token = side.keys.sign(optin.CONFIRM_PURPOSE, email, ttl=optin.CONFIRM_TTL_S, stamped=True)
    return f"{side.pub.config.public_url}confirm/{token}"


def _send_confirmation(side: PublicSide, email: str, name: str) -> None:
    from newsletter.events.mailer import send_confirmation

    send_confirmation(side.pub, side.env, email, name, confirm_link(side, email),
                      optin.CONFIRM_TTL_S // 86400)


def _check_inbox(side: PublicSide, email: str, task: BackgroundTask | None = None) -> Response:
    response = side.page("check_inbox.html", email=email, days=optin.CONFIRM_TTL_S // 86400)
    response.background = task
    return response


async def _start_signup(side: PublicSide, email: str, name: str, tags: list[str]) -> Response:
    """Record the request and, unless throttled, email a confirmation after answering."""
    send = await run_in_threadpool(optin.request_signup, side.engine, email, name, tags,
                                   limits=side.limits)
    task = BackgroundTask(run_in_threadpool, _send_confirmation, side, email, name) if send \
        else None
    return _check_inbox(side, email, task)


async def _allow(side: PublicSide, request: Request) -> bool:
    """Count a sign-up request against the visitor's network (shared by every process)."""
    return await run_in_threadpool(optin.allow_client, side.engine, client_key(request),
                                   side.limits)


def _subscribe_page(side: PublicSide, request: Request, status: int = 200, *,
                    chosen: Iterable[str] = (), email: str = "", name: str = "",
                    error: str | None = None) -> Response:
    """The form, with a fresh CSRF token bound to the visitor's cookie (set if missing)."""
    nonce, token = side.csrf.issue(request)
    response = side.page("subscribe.html", status, action="", topics=side.topics,
                         chosen=list(chosen), email=email, name=name, error=error, csrf=token)
    return side.csrf.remember(response, request, nonce)


def _unsubscribe_address(request: Request) -> str | None:
    return side_of(request).keys.subject("unsubscribe", request.path_params["token"])


async def unsubscribe_page(request: Request) -> Response:
    side = side_of(request)
    email = _unsubscribe_address(request)
    if email is None:
        return side.invalid()
    return side.page("unsubscribe.html", email=email, action="")


async def unsubscribe_now(request: Request) -> Response:
    side = side_of(request)
    email = _unsubscribe_address(request)
    if email is None:
        return side.invalid()
    await run_in_threadpool(optin.unsubscribe_address, side.engine, email)
    token = request.path_params["token"]
    return side.page("unsubscribed.html", email=email, resubscribe=side.url(f"resubscribe/{token}"))


async def resubscribe(request: Request) -> Response:
    side = side_of(request)
    email = _unsubscribe_address(request)
    if email is None:
        return side.invalid()
    if not await _allow(side, request):
        return side.too_many()
    return await _start_signup(side, email, "", [])


async def subscribe_form(request: Request) -> Response:
    return _subscribe_page(side_of(request), request)


async def subscribe(request: Request) -> Response:
    side = side_of(request)
    form = await read_form(request)
    if form is None:
        return too_large()
    first = first_values(form)
    raw_email, name = first.get("email", "").strip(), clean_name(first.get("name"))[0]
    chosen = optin.clean_topics(form.get("topics", []), side.topics)
    if not side.csrf.valid(request, first.get("csrf")):
        return _subscribe_page(side, request, 403, chosen=chosen, email=raw_email, name=name,
                               error="The form had expired. Please send it again.")
    if first.get("website"):  # the honeypot: answer as if all went well, do nothing
        return _check_inbox(side, raw_email)
    try:
        email = normalize_email(raw_email)
    except ValueError:
        return _subscribe_page(side, request, 400, chosen=chosen, email=raw_email, name=name,
                               error="Please enter a valid email address.")
    if not await _allow(side, request):
        return side.too_many()
    return await _start_signup(side, email, name, chosen)


async def confirm_page(request: Request) -> Response:
    side = side_of(request)
    email = side.keys.subject(optin.CONFIRM_PURPOSE, request.path_params["token"])
    if email is None:
        return side.invalid(EXPIRED)
    return side.page("confirm.html", email=email, action="")


async def confirm(request: Request) -> Response:
    side = side_of(request)
    try:
        info = side.keys.read(optin.CONFIRM_PURPOSE, request.path_params["token"])
    except BadToken:
        return side.invalid(EXPIRED)
    outcome = await run_in_threadpool(optin.confirm_signup, side.engine, info.subject,
                                      info.issued_ms, None, side.keys.secrets,
                                      welcome=side.pub.config.welcome is not None)
    if outcome == optin.Confirmation.UNKNOWN:
        return side.invalid(EXPIRED)
    if outcome == optin.Confirmation.CONFIRMED:
        side.welcome_wake.set()  # the welcome goes out from serve's own task, not this page
        await run_in_threadpool(release_quietly, side.pub, info.subject)
    return side.page("confirmed.html", email=info.subject,
                     already=outcome == optin.Confirmation.ALREADY)


ROUTES = [
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_now, methods=["POST"]),
    Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
    Route("/subscribe", subscribe_form, methods=["GET"]),
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
]
