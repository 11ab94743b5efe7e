"""What `newsletter serve` sends by itself: the welcome message and the end of subject tests.

- With `welcome:` in newsletter.yaml, a confirmed sign-up asks for the welcome in the
  confirmation's own transaction; the confirmation page answers at once and wakes this task,
  which sends the welcome through the ledger (newsletter.dispatch.welcome) in a worker thread.
  It also looks every `welcome.every` (30 s) for sign-ups confirmed by another process (another
  worker, `subscribers add --welcome`) and for a welcome send a crash left behind.
- With `subject_tests: {finish_in_serve: true}`, every `subject_tests.every` (1 m) it decides
  each open test whose wait is over and sends the winner to the rest
  (newsletter.dispatch.subjects), judged by people (newsletter.events.subject_figures).

Every worker process runs both; the ledger lets one process at a time make or run a send, so
the others find it busy. A failure (a transport down, a check that fails) is logged and tried
again at the next turn; it never stops the server. On shutdown the send in flight stops after
its batch (a kill is resumed by the next start).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from newsletter.compose.publication import Publication
from newsletter.compose.schema import parse_duration
from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from newsletter.dispatch.ledger import Ledger

log = logging.getLogger("newsletter.public")


def _welcome_once(pub: Publication, ledger: Ledger, stop: threading.Event) -> None:
    from newsletter.dispatch.welcome import welcome_round
    from newsletter.web.send_hooks import send_hooks

    done = welcome_round(pub, ledger=ledger, stop=stop, hooks=send_hooks)
    for send in done.sends:
        log.info("welcome: send #%s of %s: %s of %s accepted", send.id, send.issue,
                 send.accepted, send.total)
    for note in done.notes:
        log.warning("welcome: %s", note)


def _tests_once(pub: Publication, ledger: Ledger, stop: threading.Event) -> None:
    from sqlalchemy import select

    from newsletter.db.tables import subject_tests
    from newsletter.dispatch.execute import execute
    from newsletter.dispatch.plan import SendPlan
    from newsletter.dispatch.subjects import store
    from newsletter.dispatch.subjects.run import Note, advance
    from newsletter.events.subject_figures import people_who_acted
    from newsletter.events.suppressions import sync_before_send
    from newsletter.web.send_hooks import send_hooks

    with ledger.engine.connect() as conn:
        due = conn.execute(select(subject_tests.c.id).where(
            subject_tests.c.state.in_(["waiting", "finishing"]))).scalars().all()
    for test_id in due:
        test = store.get(ledger.engine, test_id)
        for step in advance(pub, test, measure=people_who_acted, before_send=sync_before_send):
            if stop.is_set():
                return
            if isinstance(step, Note):
                log.info("subject tests: %s", step.text)
            elif isinstance(step, SendPlan):
                step.transport.preflight()
                result = execute(step, stop=stop, **send_hooks(step))
                if result is not None and not result.ok:
                    log.warning("subject tests: send #%s stopped: %s", result.send.id,
                                result.report.stopped or "interrupted")


async def _every(name: str, pub: Publication, work: Callable[..., None], ledger: Ledger,
                 every_s: float, wake: asyncio.Event | None, stop: threading.Event) -> None:
    """Run `work` now and then every `every_s` seconds (or as soon as `wake` is set)."""
    while True:
        if wake is not None:
            wake.clear()  # a wake-up while the work runs calls for another turn at once
        try:
            await run_in_threadpool(work, pub, ledger, stop)
        except (NewsletterError, SQLAlchemyError, OSError) as exc:
            message = exc.format_message() if isinstance(exc, NewsletterError) else str(exc)
            log.warning("%s: %s; trying again in %gs", name, message, every_s)
        except Exception:  # noqa: BLE001 - a bug here must not stop the public side
            log.exception("%s failed; trying again in %gs", name, every_s)
        if wake is None:
            await asyncio.sleep(every_s)
            continue
        try:
            await asyncio.wait_for(wake.wait(), every_s)
        except TimeoutError:
            pass


def sending_tasks(pub: Publication, engine: Engine, wake: asyncio.Event,
                  stop: threading.Event) -> list[Any]:
    """The coroutines `serve` runs for the welcome and subject tests (none when neither is
    configured; the send ledger is loaded only then)."""
    config = pub.config
    tasks: list[Any] = []
    if config.welcome is None and not config.subject_tests.finish_in_serve:
        return tasks
    from newsletter.dispatch.ledger import Ledger

    ledger = Ledger(engine)
    if config.welcome is not None:
        every = parse_duration(config.welcome.every).total_seconds()
        tasks.append(_every("welcome", pub, _welcome_once, ledger, every, wake, stop))
    if config.subject_tests.finish_in_serve:
        every = parse_duration(config.subject_tests.every).total_seconds()
        tasks.append(_every("subject tests", pub, _tests_once, ledger, every, None, stop))
    return tasks
