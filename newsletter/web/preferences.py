"""The preference page of `newsletter serve`: a subscriber's own topics, edition language,
pause, unsubscribe from everything, and their data on request.

Routes (the token is the signed per-recipient `preferences` token from the email's footer,
checked with every secret of the rotation list, so links keep working after a rotation):
- `GET /preferences/{token}`: the page; `?stop=TOPIC` puts a one-button confirmation for
  stopping that topic at the top. A GET never changes anything (link scanners follow GETs).
- `POST /preferences/{token}`: `action` = save | stop | unsubscribe | export, with the form's
  CSRF token (newsletter.web.csrf, bound to the visitor's cookie and to this address). Every
  value is checked against what the page offers (exact text: no other digits, no unknown
  topic or language); anything else saves nothing and answers 400. `export` answers with the
  subscriber's data as a JSON download.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.audience.history import Source
from newsletter.audience.model import utcnow
from newsletter.audience.preferences import (
    LANGUAGE_ATTRIBUTE,
    PAUSE_WEEKS,
    pause_until,
    save_preferences,
    stop_topic,
)
from newsletter.audience.privacy import subscriber_data
from newsletter.audience.subscribers import get_subscriber
from newsletter.compose.publication import Publication, is_message
from newsletter.core.errors import InputError
from newsletter.core.tokens import PREFERENCES
from newsletter.core.yamlsrc import load_plain
from newsletter.db.engine import write_connection
from newsletter.events import optin
from newsletter.web.side import PublicSide, first_values, read_form, side_of, too_large

ACTIONS = ("save", "stop", "unsubscribe", "export")
#: the pause field: keep the pause as it is, end it ("0"), or pause for so many weeks
PAUSE_CHOICES = ("keep", "0", *(str(weeks) for weeks in PAUSE_WEEKS))
#: Names of edition languages, in their own language (others show their code).
LANGUAGE_NAMES = {"en": "English", "ar": "العربية", "fa": "فارسی", "he": "עברית",
                  "fr": "Français", "es": "Español", "de": "Deutsch", "ru": "Русский",
                  "tr": "Türkçe", "zh": "中文"}
STALE_FORM = ("This form was out of date, so nothing was saved. Please make your choices again "
              "and save.")


class BadForm(ValueError):
    """A posted value the page never offered."""


def edition_languages(pub: Publication) -> list[str]:
    """The languages the publication's issues are written in (its default first; messages
    such as the welcome are no issues)."""
    import yaml

    found = [pub.config.language]
    for manifest in sorted(Path(pub.root, "issues").glob("*/issue.yaml")):
        if is_message(manifest.parent.name):
            continue  # the welcome's editions are no reason to offer a language
        try:
            data = load_plain(manifest.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        language = data.get("language") if isinstance(data, dict) else None
        if isinstance(language, str) and language.strip() and language.strip() not in found:
            found.append(language.strip())
    return found


def _choices(side: PublicSide) -> dict[str, str]:
    """Edition languages offered (code -> name), read from the issues once per app."""
    if not side.languages:
        side.languages.update({code: LANGUAGE_NAMES.get(code, code)
                               for code in edition_languages(side.pub)})
    return side.languages


def _address(request: Request) -> str | None:
    return side_of(request).keys.subject(PREFERENCES, request.path_params["token"])


def _render(side: PublicSide, request: Request, email: str, status: int = 200, *,
            stop: str | None = None, notice: str | None = None,
            error: str | None = None) -> Response:
    with side.engine.connect() as conn:
        sub = get_subscriber(conn, email)
    if sub is None:
        return side.page("preferences_gone.html", 404, email=email,
                         subscribe=side.url("subscribe"))
    choices = _choices(side)
    now = utcnow()
    paused = sub.paused_until if sub.paused(now) else None
    nonce, csrf = side.csrf.issue(request, scope=email)
    response = side.page(
        "preferences.html", status, email=sub.email, sub=sub, action="", csrf=csrf,
        topics=side.topics, chosen=set(sub.tags),
        languages=choices if len(choices) > 1 else {},
        edition=sub.attributes.get(LANGUAGE_ATTRIBUTE, next(iter(choices))),
        pause_weeks=PAUSE_WEEKS, paused=paused,
        paused_text=f"{paused:%-d %B %Y}" if paused else "",
        stop=stop if stop in side.topics and stop in sub.tags else None,
        notice=notice, error=error, active=sub.active,
        resubscribe=side.url(f"resubscribe/{side.keys.sign('unsubscribe', email)}"))
    return side.csrf.remember(response, request, nonce)


async def page(request: Request) -> Response:
    side = side_of(request)
    email = _address(request)
    if email is None:
        return side.invalid()
    return await run_in_threadpool(_render, side, request, email,
                                   stop=request.query_params.get("stop"))


def _choice(form: dict[str, list[str]], name: str, allowed: tuple[str, ...] | dict[str, str],
            default: str | None = None) -> str | None:
    """The one value of `name`, which must be one of `allowed` exactly (BadForm otherwise);
    `default` when the field is absent."""
    values = form.get(name)
    if values is None:
        return default
    if len(values) != 1 or values[0] not in allowed:
        raise BadForm(name)
    return values[0]


def _topics(form: dict[str, list[str]], offered: dict[str, str]) -> list[str]:
    chosen = form.get("topics", [])
    if any(value not in offered for value in chosen):
        raise BadForm("topics")
    return list(dict.fromkeys(chosen))


async def save(request: Request) -> Response:
    side = side_of(request)
    email = _address(request)
    if email is None:
        return side.invalid()
    form = await read_form(request)
    if form is None:
        return too_large()
    if not side.csrf.valid(request, first_values(form).get("csrf"), scope=email):
        return await run_in_threadpool(_render, side, request, email, 403, error=STALE_FORM)
    try:
        return await _act(side, request, email, form)
    except BadForm:
        return await run_in_threadpool(_render, side, request, email, 400,
                                       error="That choice is not offered here; nothing was "
                                             "saved.")


async def _act(side: PublicSide, request: Request, email: str,
               form: dict[str, list[str]]) -> Response:
    action = _choice(form, "action", ACTIONS, "save")
    if action == "export":
        data = await run_in_threadpool(_export, side, email)
        if data is None:
            return await run_in_threadpool(_render, side, request, email)
        return Response(json.dumps(data, ensure_ascii=False, indent=2),
                        media_type="application/json", headers={
                            **side.headers,
                            "Content-Disposition": 'attachment; filename="my-data.json"'})
    if action == "unsubscribe":
        await run_in_threadpool(optin.unsubscribe_address, side.engine, email)
        return await run_in_threadpool(
            _render, side, request, email,
            notice="You are unsubscribed from everything. You will get no more emails from us.")
    if action == "stop":
        topic = _choice(form, "topic", side.topics)
        if topic is None:
            raise BadForm("topic")
        await run_in_threadpool(_write, side, stop_topic, email, topic)
        return await run_in_threadpool(
            _render, side, request, email, notice=f"You will no longer receive "
                                                   f"{side.topics[topic]}.")
    chosen = _topics(form, side.topics)
    language = _choice(form, "language", _choices(side))
    pause_choice = _choice(form, "pause", PAUSE_CHOICES, "keep")
    pause: dt.datetime | None | bool = False
    if pause_choice == "0":
        pause = None
    elif pause_choice != "keep":
        pause = pause_until(int(pause_choice))
    await run_in_threadpool(_write, side, save_preferences, email, topics=list(side.topics),
                            chosen=chosen, language=language, pause=pause)
    return await run_in_threadpool(_render, side, request, email,
                                   notice="Your choices are saved.")


def _write(side: PublicSide, fn: Any, email: str, *args: Any, **kwargs: Any) -> None:
    """Run one audience change in its own write transaction, recorded as made on the page."""
    with write_connection(side.engine) as conn, conn.begin():
        try:
            fn(conn, email, *args, via=Source.PAGE, **kwargs)
        except InputError:
            pass  # erased or unknown meanwhile: the page then says so


def _export(side: PublicSide, email: str) -> dict[str, Any] | None:
    with side.engine.connect() as conn:
        return subscriber_data(conn, email)


ROUTES = [
    Route("/preferences/{token}", page, methods=["GET"]),
    Route("/preferences/{token}", save, methods=["POST"]),
]
