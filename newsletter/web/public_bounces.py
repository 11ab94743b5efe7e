"""`newsletter serve` reads the bounce mailbox every `bounces.every` (5 minutes by default).

It runs when newsletter.yaml has `bounces:` and NEWSLETTER_BOUNCES_PASSWORD is set, in every
worker process; one reader at a time does the work (newsletter.events.mailbox_fetch), the
others find the mailbox busy. A failure (the IMAP server down, a refused login) is logged and
tried again at the next turn; it never stops the server.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from newsletter.compose.fields import parse_duration
from newsletter.compose.publication import Publication
from newsletter.core.errors import NewsletterError
from newsletter.events.mailbox_fetch import fetch_bounces

log = logging.getLogger("newsletter.public")


def wanted(pub: Publication) -> bool:
    """Whether `serve` should read the bounce mailbox (and why not, in the log)."""
    if pub.config.bounces is None:
        return False
    if not pub.settings.bounces_password:
        log.warning("bounces: is set in newsletter.yaml but NEWSLETTER_BOUNCES_PASSWORD is not; "
                    "the bounce mailbox is not read")
        return False
    return True


async def read_bounces(pub: Publication, engine: Engine) -> None:
    """Read the mailbox now, then every `bounces.every`, until cancelled."""
    assert pub.config.bounces is not None
    every = parse_duration(pub.config.bounces.every).total_seconds()
    while True:
        try:
            report = await run_in_threadpool(fetch_bounces, pub, engine)
            if report.read or report.busy:
                for line in report.lines():
                    log.info("bounces: %s", line)
        except (NewsletterError, SQLAlchemyError, OSError, imaplib.IMAP4.error) as exc:
            log.warning("bounces: %s; trying again in %s", exc, pub.config.bounces.every)
        except Exception:  # noqa: BLE001 - a bug here must not stop the public side
            log.exception("bounces: reading the mailbox failed; trying again in %s",
                          pub.config.bounces.every)
        await asyncio.sleep(every)
