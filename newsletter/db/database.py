"""Opening the publication's database: connect (db.engine), then upgrade the schema in place
(db.migrations). Its own module so that the engine and the migrations need not know each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from newsletter.core.errors import InputError, Problem
from newsletter.core.settings import Settings
from newsletter.db.engine import connect, display_url
from newsletter.db.migrations import upgrade


def open_database(settings: Settings | str) -> Engine:
    """Connect to the publication's database and upgrade its schema in place."""
    url = settings if isinstance(settings, str) else settings.database_url
    engine = connect(url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(
            Problem("NEWSLETTER_DATABASE_URL", None,
                    f"cannot open database {display_url(url)}: {reason}")
        ) from None
    return engine


@contextlib.contextmanager
def database(settings: Settings | str) -> Iterator[Engine]:
    """`open_database(settings)` for the duration of a `with` block, then closed (a command's
    one use of the database)."""
    engine = open_database(settings)
    try:
        yield engine
    finally:
        engine.dispose()
