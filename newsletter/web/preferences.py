"""The preference page of `newsletter serve`: a subscriber's own topics, edition language,
pause, unsubscribe from everything, and their data on request.

Routes (the token is the signed per-recipient `preferences` token from the email's footer):
- `GET /preferences/{token}`: the page; `?stop=TOPIC` puts a one-button confirmation for
  stopping that topic at the top. A GET never changes anything (link scanners follow GETs).
- `POST /preferences/{token}`: `action` = save | stop | unsubscribe | export, with the form's
  CSRF token (`csrf`, signed for this address, valid for a few hours). `export` answers with the
  subscriber's data as a JSON download.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
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
from newsletter.compose.publication import Publication
from newsletter.core.tokens import PREFERENCES, BadToken, make_token, read_token
from newsletter.db.engine import write_connection
from newsletter.events import optin

if TYPE_CHECKING:
    from newsletter.web.public import PublicSide

FORM_PURPOSE = "preferences-form"
FORM_TTL_S = 4 * 3600
#: Names of edition languages, in their own language (others show their code).
LANGUAGE_NAMES = {"en": "English", "ar": "العربية", "fa": "فارسی", "he": "עברית",
                  "fr": "Français", "es": "Español", "de": "Deutsch", "ru": "Русский",
                  "tr": "Türkçe", "zh": "中文"}


def edition_languages(pub: Publication) -> list[str]:
    """The languages the publication's issues are written in (its default first)."""
    found = [pub.config.language]
    for manifest in sorted(Path(pub.root, "issues").glob("*/issue.yaml")):
        try:
            data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        language = data.get("language") if isinstance(data, dict) else None
        if isinstance(language, str) and language.strip() and language.strip() not in found:
            found.append(language.strip())
    return found


FormReader = Callable[[Request], Awaitable[dict[str, list[str]] | None]]


def routes(side: PublicSide, read_form: FormReader) -> list[Route]:
    """The preference page's routes for the public app (`read_form`: the app's size-capped
    reader of urlencoded bodies)."""
    languages = edition_languages(side.pub)
    choices = {code: LANGUAGE_NAMES.get(code, code) for code in languages}

    def address(request: Request) -> str | None:
        try:
            return read_token(side.secret, PREFERENCES, request.path_params["token"])
        except BadToken:
            return None

    def form_token(email: str) -> str:
        return make_token(side.secret, FORM_PURPOSE, email, ttl=FORM_TTL_S)

    def form_ok(email: str, token: str) -> bool:
        try:
            return read_token(side.secret, FORM_PURPOSE, token) == email
        except BadToken:
            return False

    def load(email: str) -> Any:
        with side.engine.connect() as conn:
            return get_subscriber(conn, email)

    def render(email: str, status: int = 200, *, stop: str | None = None,
               notice: str | None = None, error: str | None = None) -> Response:
        sub = load(email)
        if sub is None:
            return side.page("preferences_gone.html", 404, email=email,
                             subscribe="../subscribe")
        now = utcnow()
        paused = sub.paused_until if sub.paused(now) else None
        return side.page(
            "preferences.html", status, email=sub.email, sub=sub, action="",
            csrf=form_token(email), topics=side.topics, chosen=set(sub.tags),
            languages=choices if len(choices) > 1 else {},
            edition=sub.attributes.get(LANGUAGE_ATTRIBUTE, languages[0]),
            pause_weeks=PAUSE_WEEKS, paused=paused,
            paused_text=f"{paused:%-d %B %Y}" if paused else "",
            stop=stop if stop in side.topics and stop in sub.tags else None,
            notice=notice, error=error, active=sub.active,
            resubscribe=f"../resubscribe/{make_token(side.secret, 'unsubscribe', email)}")

    async def page(request: Request) -> Response:
        email = address(request)
        if email is None:
            return side.invalid()
        return await run_in_threadpool(render, email, stop=request.query_params.get("stop"))

    async def save(request: Request) -> Response:
        email = address(request)
        if email is None:
            return side.invalid()
        form = await read_form(request)
        if form is None:
            return Response("Request too large", 413, headers=side.headers)
        first = {k: (v[0] if v else "") for k, v in form.items()}
        if not form_ok(email, first.get("csrf", "")):
            return await run_in_threadpool(
                render, email, 403, error="This form was out of date, so nothing was saved. "
                                          "Please make your choices again and save.")
        action = first.get("action", "save")
        if action == "export":
            data = await run_in_threadpool(_export, side, email)
            if data is None:
                return await run_in_threadpool(render, email)
            return Response(json.dumps(data, ensure_ascii=False, indent=2),
                            media_type="application/json", headers={
                                **side.headers,
                                "Content-Disposition": 'attachment; filename="my-data.json"'})
        if action == "unsubscribe":
            await run_in_threadpool(optin.unsubscribe_address, side.engine, email)
            return await run_in_threadpool(
                render, email, notice="You are unsubscribed from everything. You will get no "
                                      "more emails from us.")
        if action == "stop":
            topic = first.get("topic", "")
            if topic not in side.topics:
                return await run_in_threadpool(render, email, 400, error="Unknown topic.")
            await run_in_threadpool(_write, side, stop_topic, email, topic)
            return await run_in_threadpool(
                render, email, notice=f"You will no longer receive {side.topics[topic]}.")
        chosen = optin.clean_topics(form.get("topics", []), side.topics)
        language = first.get("language") if first.get("language") in choices else None
        pause: dt.datetime | None | bool = False
        choice = first.get("pause", "keep")
        if choice == "0":
            pause = None
        elif choice.isdigit() and int(choice) in PAUSE_WEEKS:
            pause = pause_until(int(choice))
        await run_in_threadpool(_write, side, save_preferences, email, topics=list(side.topics),
                                chosen=chosen, language=language, pause=pause)
        return await run_in_threadpool(render, email, notice="Your choices are saved.")

    return [
        Route("/preferences/{token}", page, methods=["GET"]),
        Route("/preferences/{token}", save, methods=["POST"]),
    ]


def _write(side: PublicSide, fn: Any, email: str, *args: Any, **kwargs: Any) -> None:
    """Run one audience change in its own write transaction, recorded as made on the page."""
    from newsletter.core.errors import InputError

    with write_connection(side.engine) as conn, conn.begin():
        try:
            fn(conn, email, *args, via=Source.PAGE, **kwargs)
        except InputError:
            pass  # erased or unknown meanwhile: the page then says so


def _export(side: PublicSide, email: str) -> dict[str, Any] | None:
    with side.engine.connect() as conn:
        return subscriber_data(conn, email)
