"""Forgetting a person everywhere we keep them: the database (newsletter.audience.privacy, which
lists the address on the erasure list) and the outbox's message files, which carry the
address in their names and headers (newsletter.providers.outbox)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from newsletter.audience.erasure import spellings
from newsletter.audience.privacy import Forgotten, forget
from newsletter.compose.publication import Publication
from newsletter.providers.outbox import delete_messages


@dataclass(frozen=True)
class Erasure:
    """What forgetting one person did."""

    database: Forgotten
    files: int  # outbox message files deleted


def forget_everywhere(pub: Publication, engine: Engine, email: str) -> Erasure:
    """Erase `email` from the database, then delete its outbox files (NEWSLETTER_OUTBOX)."""
    done = forget(engine, email, pub.settings.secrets)
    return Erasure(done, delete_messages(pub.settings.outbox, spellings(email)))
