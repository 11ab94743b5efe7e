"""HMAC-signed tokens bound to an email address (unsubscribe links, opt-in confirmations,
tracked links).

A token is `<base64url(payload)>.<base64url(hmac)>`, where payload is `purpose|email|expiry`
(expiry 0 = never). Verification recomputes the HMAC and compares in constant time.
"""

from __future__ import annotations

import base64
import hmac
import time

SAMPLE_SECRET = "sample-secret-not-for-sending"


class BadToken(ValueError):
    """The token was forged, altered, expired or malformed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.digest(secret.encode("utf-8"), payload, "sha256")[:20]  # one C call


def make_token(secret: str, purpose: str, email: str, ttl: int | None = None) -> str:
    """Sign `email` for `purpose`; with `ttl` seconds the token expires."""
    expiry = int(time.time()) + ttl if ttl else 0
    payload = f"{purpose}|{email.lower()}|{expiry}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def read_token(secret: str, purpose: str, token: str, now: float | None = None) -> str:
    """Return the email a valid token was made for; raise BadToken otherwise."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise BadToken("malformed token") from exc
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BadToken("bad signature")
    try:
        kind, email, expiry = payload.decode("utf-8").split("|")
        expires = int(expiry)
    except ValueError as exc:
        raise BadToken("malformed token") from exc
    if kind != purpose:
        raise BadToken("token is for something else")
    if expires and (now if now is not None else time.time()) > expires:
        raise BadToken("token expired")
    return email


def unsubscribe_url(public_url: str, secret: str, email: str) -> str:
    """The per-recipient one-click unsubscribe URL served by `newsletter serve`."""
    return f"{public_url.rstrip('/')}/unsubscribe/{make_token(secret, 'unsubscribe', email)}"


def link_token(secret: str, send_id: int, position: int, email: str) -> str:
    """A short signed token naming one link of one send for one recipient (click tracking)."""
    payload = f"{send_id:x}.{position:x}.{email.lower()}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, b'click|' + payload)[:12])}"


def read_link_token(secrets: list[str], token: str) -> tuple[int, int, str]:
    """(send_id, position, email) of a valid link token; BadToken otherwise."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise BadToken("malformed token") from exc
    if not any(hmac.compare_digest(mac, _mac(s, b"click|" + payload)[:12]) for s in secrets):
        raise BadToken("bad signature")
    try:
        send, position, email = payload.decode("utf-8").split(".", 2)
        return int(send, 16), int(position, 16), email
    except ValueError as exc:
        raise BadToken("malformed token") from exc


def click_url(public_url: str, token: str) -> str:
    """The redirect URL `newsletter serve` answers for a link token."""
    return f"{public_url.rstrip('/')}/c/{token}"
