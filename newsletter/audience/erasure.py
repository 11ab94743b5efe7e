"""The right to be forgotten, on the audience side.

`erase()` deletes a subscriber with their tags, attributes, audit trail and sign-up request,
moves their engagement events to an anonymous key (so counts stay right), and puts a keyed hash
of the address (HMAC with NEWSLETTER_SECRET) on the `erased_addresses` list. Imports and
`subscribers add` refuse a listed address, saying why; only the person's own confirmed sign-up
brings it back (and takes it off the list). The send ledger's rows are anonymised by the
dispatch layer (newsletter.audience.privacy).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Iterable

from sqlalchemy import Connection, delete, exists, insert, select, update

from newsletter.audience.model import email_key, utcnow
from newsletter.core.errors import InputError, Problem
from newsletter.db.tables import (
    engagement,
    erased_addresses,
    signups,
    subscriber_history,
    subscriber_tags,
    subscribers,
    webhook_events,
)


def address_hash(secret: str, email: str) -> str:
    """The keyed hash kept for an erased address (hex; no way back to the address)."""
    return hmac.digest(secret.encode("utf-8"), b"erased|" + email_key(email).encode("utf-8"),
                       "sha256").hex()


def refusal(email: str, erased_at: dt.datetime) -> str:
    """Why an erased address is not added back."""
    return (f"{email} was erased at the person's request on {erased_at:%Y-%m-%d}; only their "
            "own confirmed sign-up can add it again")


def any_erased(conn: Connection) -> bool:
    return bool(conn.execute(select(exists().select_from(erased_addresses))).scalar())


def erased_at(conn: Connection, secret: str | None, emails: Iterable[str]
              ) -> dict[str, dt.datetime]:
    """The erased addresses among `emails` (address -> when erased). Needs the secret once
    the list holds anything."""
    emails = list(emails)
    if not emails or not any_erased(conn):
        return {}
    if not secret:
        raise InputError(Problem("NEWSLETTER_SECRET", None, "NEWSLETTER_SECRET is not set; it "
                                 "is needed to check addresses against the erasure list"))
    hashes = {address_hash(secret, e): e for e in emails}
    found: dict[str, dt.datetime] = {}
    keys = list(hashes)
    for start in range(0, len(keys), 500):
        rows = conn.execute(select(erased_addresses.c.address_hash, erased_addresses.c.erased_at)
                            .where(erased_addresses.c.address_hash.in_(keys[start:start + 500])))
        for digest, when in rows:
            found[hashes[digest]] = when
    return found


def refuse_erased(conn: Connection, secret: str | None, email: str) -> None:
    """InputError when `email` is on the erasure list."""
    when = erased_at(conn, secret, [email]).get(email)
    if when is not None:
        raise InputError(Problem(email, None, refusal(email, when)))


def clear_erased(conn: Connection, secret: str | None, email: str) -> None:
    """Take `email` off the erasure list (its owner confirmed a new sign-up)."""
    if secret and any_erased(conn):
        conn.execute(delete(erased_addresses)
                     .where(erased_addresses.c.address_hash == address_hash(secret, email)))


def erase(conn: Connection, secret: str, subscriber_id: int, email: str) -> None:
    """Delete everything the audience tables hold about one person and list the address's
    keyed hash (inside the caller's transaction)."""
    key = email_key(email)
    conn.execute(delete(subscriber_tags).where(subscriber_tags.c.subscriber_id == subscriber_id))
    conn.execute(delete(subscriber_history)
                 .where(subscriber_history.c.subscriber_id == subscriber_id))
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
    conn.execute(delete(signups).where(signups.c.email_key == key))
    anonymous = f"erased-{secrets.token_hex(8)}"  # keeps engagement counts, not the address
    conn.execute(update(engagement).where(engagement.c.email_key == key)
                 .values(email_key=anonymous))
    conn.execute(update(webhook_events).where(webhook_events.c.email_key == key)
                 .values(email_key=anonymous))
    digest = address_hash(secret, email)
    conn.execute(delete(erased_addresses).where(erased_addresses.c.address_hash == digest))
    conn.execute(insert(erased_addresses).values(address_hash=digest, erased_at=utcnow()))
