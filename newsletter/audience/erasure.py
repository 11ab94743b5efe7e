"""The erasure list: the one module that knows whether an address was erased at its owner's request.

Every way an address reaches the database asks it first: `add_subscriber` (the CLI's `add`,
confirmed sign-ups), the importer, and newsletter.events.apply, through which webhook events of
every provider and our tracked clicks pass. The preference page and the suppression sync only
change known subscribers, and an erased address is no subscriber. Only the person's own
confirmed sign-up brings an address back (`restore`); events that predate their erasure stay
anonymous even then.

`erase()` deletes what the audience tables hold about one person: the subscriber with tags,
attributes and audit trail, sign-up requests, and moves webhook events and engagement counts to
an anonymous key without user agent or IP (so every send's counts stay right). The send
ledger's rows stay for the same reason, but lose address, name, attributes, provider id and
last error.

Keying. An entry is an HMAC-SHA256 of the address in `canonical` form (normalised by
email-validator, NFKC, lower case: " Zed@ＥＸＡＭＰＬＥ.org" and "zed@example.org" are one entry)
under the *erasure key*: 32 random bytes made at the first erasure and stored in `erasure_keys`
only wrapped under each signing secret (XOR with an HMAC of that secret). So the database alone
cannot tell whether an address is listed, and the list survives secret rotation: the first use
with a new NEWSLETTER_SECRET while the old one is still in NEWSLETTER_SECRET_PREVIOUS wraps the
key under the new secret too. With none of the secrets that wrapped it, checks fail closed
(`EraseKeyMissing`) instead of letting erased people back. Entries made before this scheme (an
HMAC with the secret itself, `legacy`) are matched under every secret of the rotation list.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets as random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from newsletter.audience.model import ascii_email, email_key, normalize_email, utcnow
from newsletter.core.errors import InputError, Problem
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import (
    engagement,
    erased_addresses,
    erasure_keys,
    signups,
    subscriber_history,
    subscriber_tags,
    subscribers,
    webhook_events,
)

Secrets = str | Sequence[str] | None
_CHUNK = 400
_WRAP = b"newsletter-erasure-key-wrap"
_FINGERPRINT = b"newsletter-erasure-key-fingerprint"
ANONYMOUS = "erased-"  # prefix of the anonymous keys events are moved to
ERASED_DOMAIN = "erased.invalid"  # ledger rows of erased people: <anonymous key>@erased.invalid


class EraseKeyMissing(InputError):
    """The erasure list cannot be read with the secrets at hand."""


@dataclass(frozen=True)
class Entry:
    """An address on the erasure list: when it was erased, and when (if ever) its owner's own
    confirmed sign-up brought it back."""

    erased_at: dt.datetime
    restored_at: dt.datetime | None = None

    @property
    def refused(self) -> bool:
        """Whether the address stays out (no confirmed sign-up since the erasure)."""
        return self.restored_at is None


def canonical(email: str) -> str:
    """The one spelling of an address the list is keyed by."""
    text = unicodedata.normalize("NFKC", email).strip()
    try:
        text = normalize_email(text)
    except ValueError:
        pass
    return unicodedata.normalize("NFKC", text).lower()


def spellings(email: str) -> set[str]:
    """The `email_key`s under which the person's rows may be stored: as given, normalised, and
    with the domain in ASCII (what providers report back)."""
    found = {email_key(email.strip())}
    try:
        normal = normalize_email(email)
    except ValueError:
        return found
    return found | {email_key(normal), email_key(ascii_email(normal))}


def _keys(secrets: Secrets) -> list[str]:
    if isinstance(secrets, str):
        return [secrets]
    return [s for s in (secrets or ()) if s]


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def _fingerprint(secret: str) -> str:
    return _hmac(secret.encode(), _FINGERPRINT).hex()[:40]


def _wrap(secret: str, key: bytes) -> str:
    pad = _hmac(secret.encode(), _WRAP)
    return bytes(a ^ b for a, b in zip(key, pad, strict=True)).hex()


def _need_secret() -> InputError:
    return InputError(Problem("NEWSLETTER_SECRET", None, "NEWSLETTER_SECRET is not set; it is "
                              "needed to check addresses against the erasure list"))


def _insert_ignoring_conflict(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    conn.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def erasure_key(conn: Connection, secrets: Secrets, *, create: bool = False) -> bytes | None:
    """The list's key, unwrapped with the first secret that wrapped it, and wrapped under every
    secret at hand that has not yet (so a rotation carries it over). None when no key exists
    and `create` is false; EraseKeyMissing when one exists but none of `secrets` wrapped it."""
    keys = _keys(secrets)
    if not keys:
        raise _need_secret()
    rows = dict(conn.execute(select(erasure_keys.c.fingerprint, erasure_keys.c.wrapped)).all())
    key = None
    for secret in keys:
        wrapped = rows.get(_fingerprint(secret))
        if wrapped is not None:
            key = bytes.fromhex(_wrap(secret, bytes.fromhex(wrapped)))
            break
    if key is None:
        if rows:
            raise EraseKeyMissing(Problem(
                "NEWSLETTER_SECRET", None, "the erasure list is keyed with a secret that is no "
                "longer set; put the earlier NEWSLETTER_SECRET back into "
                "NEWSLETTER_SECRET_PREVIOUS (comma-separated) and run the command again"))
        if not create:
            return None
        key = random.token_bytes(32)
    now = utcnow()
    for secret in keys:
        fingerprint = _fingerprint(secret)
        if fingerprint not in rows:
            _insert_ignoring_conflict(conn, erasure_keys, {
                "fingerprint": fingerprint, "wrapped": _wrap(secret, key), "created_at": now})
    if not rows:  # a concurrent first erasure may have stored its own key: use the stored one
        stored = conn.execute(select(erasure_keys.c.wrapped).where(
            erasure_keys.c.fingerprint == _fingerprint(keys[0]))).scalar_one()
        key = bytes.fromhex(_wrap(keys[0], bytes.fromhex(stored)))
    return key


def _digest(key: bytes, address: str) -> str:
    return _hmac(key, b"erased|" + address.encode("utf-8")).hex()


def _legacy_digest(secret: str, address: str) -> str:
    """An entry as versions before the erasure key made it (HMAC with the secret itself)."""
    return _hmac(secret.encode("utf-8"), b"erased|" + address.encode("utf-8")).hex()


def _state(conn: Connection) -> bool | None:
    """None when the list is empty; else whether it holds legacy entries."""
    found = conn.execute(select(erased_addresses.c.legacy)
                         .order_by(erased_addresses.c.legacy.desc()).limit(1)).first()
    return None if found is None else bool(found[0])


def any_erased(conn: Connection) -> bool:
    return _state(conn) is not None


def lookup(conn: Connection, secrets: Secrets, emails: Iterable[str]) -> dict[str, Entry]:
    """The entries of those `emails` that are on the list (restored ones included), by the
    address as given. Needs the secrets once the list holds anything."""
    emails = list(dict.fromkeys(emails))
    legacy = _state(conn) if emails else None
    if legacy is None:
        return {}
    key = erasure_key(conn, secrets)
    digests: dict[str, list[str]] = {}
    for email in emails:
        address = canonical(email)
        found = [_digest(key, address)] if key is not None else []
        if legacy:
            found += [_legacy_digest(s, address) for s in _keys(secrets)]
            found += [_legacy_digest(s, email_key(email)) for s in _keys(secrets)]
        for digest in found:
            digests.setdefault(digest, []).append(email)
    result: dict[str, Entry] = {}
    hashes = list(digests)
    c = erased_addresses.c
    for start in range(0, len(hashes), _CHUNK):
        rows = conn.execute(select(c.address_hash, c.erased_at, c.restored_at)
                            .where(c.address_hash.in_(hashes[start:start + _CHUNK])))
        for digest, erased, restored in rows:
            for email in digests[digest]:
                known = result.get(email)
                if known is None or erased > known.erased_at:
                    result[email] = Entry(erased, restored)
    return result


def erased_at(conn: Connection, secrets: Secrets, emails: Iterable[str]
              ) -> dict[str, dt.datetime]:
    """The addresses among `emails` that stay out (address -> when erased)."""
    return {e: entry.erased_at for e, entry in lookup(conn, secrets, emails).items()
            if entry.refused}


def refusal(email: str, erased_at: dt.datetime) -> str:
    """Why an erased address is not added back."""
    return (f"{email} was erased at the person's request on {erased_at:%Y-%m-%d}; only their "
            "own confirmed sign-up can add it again")


def refuse_erased(conn: Connection, secrets: Secrets, email: str) -> None:
    """InputError when `email` is on the erasure list (and not brought back since)."""
    when = erased_at(conn, secrets, [email]).get(email)
    if when is not None:
        raise InputError(Problem(email, None, refusal(email, when)))


def restore(conn: Connection, secrets: Secrets, email: str, issued: dt.datetime | None = None,
            now: dt.datetime | None = None) -> bool:
    """The person confirmed a sign-up (its link issued at `issued`): take `email` off the
    list, keeping when it was erased so older events stay anonymous. False, changing nothing,
    when the link was issued before the erasure (it cannot be the person's new wish)."""
    entry = lookup(conn, secrets, [email]).get(email)
    if entry is None:
        return True
    if issued is not None and issued < entry.erased_at:
        return False
    now = now or utcnow()
    key = erasure_key(conn, secrets)
    address = canonical(email)
    digests = [_legacy_digest(s, address) for s in _keys(secrets)]
    digests += [_legacy_digest(s, email_key(email)) for s in _keys(secrets)]
    conn.execute(delete(erased_addresses).where(erased_addresses.c.address_hash.in_(digests)))
    _list(conn, key, address, entry.erased_at, restored=now)
    return True


def _list(conn: Connection, key: bytes | None, address: str, erased: dt.datetime,
          restored: dt.datetime | None = None) -> None:
    assert key is not None
    digest = _digest(key, address)
    conn.execute(delete(erased_addresses).where(erased_addresses.c.address_hash == digest))
    conn.execute(insert(erased_addresses).values(address_hash=digest, erased_at=erased,
                                                 restored_at=restored, legacy=False))


def screen(conn: Connection, secrets: Secrets,
           sightings: Sequence[tuple[str, int | None, int]]) -> set[int]:
    """Positions of the (address, send id, unix time) sightings that must not be stored under
    the address: it is erased, or it came back after an erasure that the event predates (its
    send, or without a send its time, is older than the erasure). One cheap query when the
    list is empty."""
    if not sightings or not any_erased(conn):
        return set()
    entries = lookup(conn, secrets, {email for email, _, _ in sightings})
    if not entries:
        return set()
    send_ids = {send for email, send, _ in sightings if email in entries and send is not None}
    started: dict[int, dt.datetime] = {}
    ids = sorted(send_ids)
    for start in range(0, len(ids), _CHUNK):
        started.update(conn.execute(select(sends.c.id, sends.c.created_at)
                                    .where(sends.c.id.in_(ids[start:start + _CHUNK]))).all())
    gone = set()
    for n, (email, send, at) in enumerate(sightings):
        entry = entries.get(email)
        if entry is None:
            continue
        if entry.refused:
            gone.add(n)
            continue
        when = started.get(send) if send is not None else (
            dt.datetime.fromtimestamp(at, dt.UTC) if at else None)
        if when is None or when < entry.erased_at:
            gone.add(n)
    return gone


def anonymised(email: str) -> bool:
    """Whether `email` is the stand-in an erasure left in a ledger row (no one's address)."""
    return email.startswith(ANONYMOUS) and email.endswith("@" + ERASED_DOMAIN)


def anonymous_key() -> str:
    """A fresh key for events kept without their address."""
    return f"{ANONYMOUS}{random.token_hex(8)}"


def mentions(text: str | None, keys: Iterable[str]) -> bool:
    """Whether `text` holds one of the address spellings `keys` (plain or percent-encoded)."""
    if not text:
        return False
    low = text.lower()
    return any(k in low or quote(k, safe="").lower() in low for k in keys)


@dataclass(frozen=True)
class Erased:
    """What `erase` found and cleaned."""

    subscriber: bool
    ledger_rows: int
    events: int
    signups: int


def _scrub_errors(conn: Connection, keys: set[str]) -> None:
    """Take the address out of every send's and recipient's last error (an SMTP 550 may quote
    it for another recipient's batch too)."""
    for table in (sends, send_recipients):
        column = table.c.last_error
        rows = conn.execute(select(table.c.id, column).where(
            or_(*(func.lower(column).contains(k, autoescape=True) for k in keys)))).all()
        for row_id, text in rows:
            cleaned = text
            for k in sorted(keys, key=len, reverse=True):
                cleaned = _replace_folded(cleaned, k, "[erased address]")
            conn.execute(update(table).where(table.c.id == row_id).values(last_error=cleaned))


def _replace_folded(text: str, needle: str, by: str) -> str:
    low, out, start = text.lower(), [], 0
    while (found := low.find(needle, start)) >= 0:
        out += [text[start:found], by]
        start = found + len(needle)
    return "".join(out) + text[start:]


def erase(conn: Connection, secrets: Secrets, email: str) -> Erased:
    """Delete and anonymise everything the database holds about the person at `email`, known
    subscriber or not, and list the address (inside the caller's transaction)."""
    key = erasure_key(conn, secrets, create=True)
    keys = spellings(email)
    sub_ids = list(conn.execute(select(subscribers.c.id).where(
        subscribers.c.email_key.in_(keys))).scalars())
    anonymous = anonymous_key()  # keeps engagement counts, not the address
    r = send_recipients.c
    own = or_(func.lower(r.email).in_(keys), r.subscriber_id.in_(sub_ids)) if sub_ids else \
        func.lower(r.email).in_(keys)
    ledger = conn.execute(update(send_recipients).where(own).values(
        subscriber_id=None, email=f"{anonymous}@{ERASED_DOMAIN}", name="", attributes={},
        provider_id=None, last_error=None)).rowcount or 0
    _scrub_errors(conn, keys)
    if sub_ids:
        conn.execute(delete(subscriber_tags).where(subscriber_tags.c.subscriber_id.in_(sub_ids)))
        conn.execute(delete(subscriber_history)
                     .where(subscriber_history.c.subscriber_id.in_(sub_ids)))
        conn.execute(delete(subscribers).where(subscribers.c.id.in_(sub_ids)))
    requests = conn.execute(delete(signups).where(signups.c.email_key.in_(keys))).rowcount or 0
    w = webhook_events.c
    events = conn.execute(update(webhook_events).where(w.email_key.in_(keys)).values(
        email_key=anonymous, user_agent=None, ip=None)).rowcount or 0
    clicks = conn.execute(select(w.sg_event_id, w.url).where(
        w.email_key == anonymous, w.url.is_not(None))).all()
    for event_id, url in clicks:
        if mentions(url, keys):
            conn.execute(update(webhook_events).where(w.sg_event_id == event_id)
                         .values(url=None))
    for n, spelling in enumerate(sorted(keys)):  # one key each: (send, key) is unique
        conn.execute(update(engagement).where(engagement.c.email_key == spelling)
                     .values(email_key=f"{anonymous}-{n}" if n else anonymous))
    address = canonical(email)
    digests = [_legacy_digest(s, address) for s in _keys(secrets)]
    digests += [_legacy_digest(s, k) for s in _keys(secrets) for k in keys]
    conn.execute(delete(erased_addresses).where(erased_addresses.c.address_hash.in_(digests)))
    _list(conn, key, address, utcnow())
    return Erased(bool(sub_ids), ledger, events, requests)
