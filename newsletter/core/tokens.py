"""HMAC-signed tokens bound to a purpose and a subject (unsubscribe links, opt-in confirmations,
preference pages, CSRF tokens, tracked links).

A token is `2.<base64url(payload)>.<base64url(mac)>`. The payload is a JSON array
`[purpose, subject, expiry, issued_ms]` (expiry 0 = never; issued 0 = not stamped), so no
character of an address
(`|`, `.`, quotes ...) can be mistaken for a separator. The MAC is HMAC-SHA256 over the purpose
and the payload, so a token made for one purpose never passes as another; it is compared in
constant time (`hmac.compare_digest`).

Secrets rotate: tokens are made with NEWSLETTER_SECRET and accepted when signed by it or by one
of NEWSLETTER_SECRET_PREVIOUS (comma-separated), so links in mail already delivered keep
working. `Keys` holds that rotation list and is the one verifier the application uses: every
link and every CSRF check reads its token through it, so none can check with the current
secret alone (tests/public/test_tokens.py keeps the lower-level readers out of other
modules). A secret shorter than MIN_SECRET_LENGTH characters is refused for sending and
serving (`signing_secrets`). Tokens of the first format (`<b64(purpose|email|expiry)>.<b64(mac)>`,
before this one) are still read, with the address taken as everything between the first and the
last `|`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newsletter.core.errors import InputError, Problem

SAMPLE_SECRET = "sample-secret-not-for-sending"
MIN_SECRET_LENGTH = 32
VERSION = "2"


class BadToken(ValueError):
    """The token was forged, altered, expired or malformed."""


@dataclass(frozen=True)
class TokenInfo:
    """What a valid token says: its subject (an address), when it was issued (unix ms, 0 for
    tokens of the first format) and when it expires (unix s, 0 = never)."""

    subject: str
    issued_ms: int
    expires: int


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _json_array(purpose: str, subject: str, expiry: int, issued: int) -> bytes:
    """The payload as json.dumps writes it (ensure_ascii=False, compact); a send signs two per
    recipient, so plain printable ASCII (every usual address) skips the encoder."""
    plain = (purpose + subject).isascii() and (purpose + subject).isprintable()
    if plain and '"' not in purpose + subject and "\\" not in purpose + subject:
        return f'["{purpose}","{subject}",{expiry},{issued}]'.encode()
    return json.dumps([purpose, subject, expiry, issued], ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@functools.lru_cache(maxsize=64)
def _keyed(secret: str, purpose: str) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hashes keyed with `secret` (RFC 2104:
    H(K ^ opad || H(K ^ ipad || message))), the inner one already fed the domain prefix of
    `purpose`. A send signs two tokens per recipient: copying these spares the key schedule
    (and OpenSSL's per-call set-up) that `hmac.digest` repeats on every call: 3.3 -> 0.8 µs.
    """
    key = secret.encode("utf-8")
    if len(key) > 64:  # SHA-256's block size: longer keys are hashed first
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD))
    inner.update(b"newsletter-token-2\0" + purpose.encode("utf-8") + b"\0")
    return inner, hashlib.sha256(key.translate(_OPAD))


def _mac(secret: str, purpose: str, payload: bytes) -> bytes:
    """HMAC-SHA256(secret, "newsletter-token-2\\0" purpose "\\0" payload), first 20 bytes."""
    inner, outer = _keyed(secret, purpose)
    inner = inner.copy()
    inner.update(payload)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()[:20]


def _legacy_mac(secret: str, payload: bytes) -> bytes:
    return hmac.digest(secret.encode("utf-8"), payload, "sha256")[:20]


def _as_list(secrets: str | Sequence[str]) -> list[str]:
    return [secrets] if isinstance(secrets, str) else [s for s in secrets if s]


def make_token(secret: str, purpose: str, email: str, ttl: int | None = None, *,
               stamped: bool = False, now: float | None = None) -> str:
    """Sign `email` (any subject text) for `purpose`; with `ttl` seconds the token expires.
    `stamped` records the issue time (single-use tokens need it); without it the token of an
    address is always the same (unsubscribe links: reproducible messages)."""
    now = time.time() if now is None else now
    expiry = int(now) + ttl if ttl else 0
    issued = int(now * 1000) if stamped else 0
    payload = _json_array(purpose, email.lower(), expiry, issued)
    return f"{VERSION}.{_b64(payload)}.{_b64(_mac(secret, purpose, payload))}"


def _parse(purpose: str, token: str, secrets: list[str]) -> tuple[str, str, int, int]:
    """(kind, subject, expiry, issued_ms) of a token signed by one of `secrets`."""
    parts = token.split(".")
    try:
        if len(parts) == 3 and parts[0] == VERSION:
            payload, mac = _unb64(parts[1]), _unb64(parts[2])
            signed = [_mac(s, purpose, payload) for s in secrets]
        elif len(parts) == 2:
            payload, mac = _unb64(parts[0]), _unb64(parts[1])
            signed = [_legacy_mac(s, payload) for s in secrets]
        else:
            raise BadToken("malformed token")
    except (ValueError, TypeError) as exc:
        raise BadToken("malformed token") from exc
    ok = False
    for expected in signed:  # every secret is tried: the time does not tell which matched
        ok |= hmac.compare_digest(mac, expected)
    if not ok:
        raise BadToken("bad signature")
    try:
        if len(parts) == 3:
            data: Any = json.loads(payload.decode("utf-8"))
            kind, subject, expiry, issued = data
            if not (isinstance(kind, str) and isinstance(subject, str)
                    and isinstance(expiry, int) and isinstance(issued, int)):
                raise ValueError("wrong types")
            return kind, subject, expiry, issued
        kind, rest = payload.decode("utf-8").split("|", 1)
        subject, expiry_text = rest.rsplit("|", 1)
        return kind, subject, int(expiry_text), 0
    except ValueError as exc:
        raise BadToken("malformed token") from exc


def read_token_info(secrets: str | Sequence[str], purpose: str, token: str,
                    now: float | None = None) -> TokenInfo:
    """The TokenInfo of a valid token for `purpose`; BadToken otherwise."""
    keys = _as_list(secrets)
    if not keys:
        raise BadToken("no secret to check the token with")
    kind, subject, expires, issued = _parse(purpose, token, keys)
    if kind != purpose:
        raise BadToken("token is for something else")
    if expires and (now if now is not None else time.time()) > expires:
        raise BadToken("token expired")
    return TokenInfo(subject, issued, expires)


def read_token(secrets: str | Sequence[str], purpose: str, token: str,
               now: float | None = None) -> str:
    """Return the email a valid token was made for; raise BadToken otherwise. `secrets`: the
    current secret, or it followed by earlier ones still accepted."""
    return read_token_info(secrets, purpose, token, now).subject


@dataclass(frozen=True)
class Keys:
    """The secrets tokens are signed and checked with: the current one first, then earlier ones
    still accepted. New tokens are signed with the current secret; every check accepts any."""

    secrets: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.secrets, str) or not self.secrets or not all(self.secrets):
            raise ValueError("Keys needs a non-empty sequence of secrets")

    @classmethod
    def of(cls, secrets: Sequence[str]) -> Keys:
        return cls(tuple(secrets))

    @property
    def current(self) -> str:
        return self.secrets[0]

    def sign(self, purpose: str, subject: str, ttl: int | None = None, *,
             stamped: bool = False, now: float | None = None) -> str:
        """A token for `subject` (see make_token), signed with the current secret."""
        return make_token(self.current, purpose, subject, ttl, stamped=stamped, now=now)

    def read(self, purpose: str, token: str, now: float | None = None) -> TokenInfo:
        """The TokenInfo of a token signed by any of the secrets; BadToken otherwise."""
        return read_token_info(self.secrets, purpose, token, now)

    def subject(self, purpose: str, token: str, now: float | None = None) -> str | None:
        """The subject of a valid token for `purpose`, or None."""
        try:
            return self.read(purpose, token, now).subject
        except BadToken:
            return None

    def read_link(self, token: str) -> tuple[int, int, str]:
        """(send_id, position, email) of a valid tracked-link token; BadToken otherwise."""
        return read_link_token(list(self.secrets), token)


def signing_secrets(current: str | None, previous: Sequence[str] = ()) -> list[str]:
    """[current, *previous] for sending and serving; InputError when the current secret is
    missing or any secret is shorter than MIN_SECRET_LENGTH characters."""
    if not current:
        raise InputError(Problem("NEWSLETTER_SECRET", None, "NEWSLETTER_SECRET is not set; it "
                                 "signs unsubscribe and confirmation links (use a long random "
                                 "value, e.g. `python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))'`, and keep it stable)"))
    for name, value in [("NEWSLETTER_SECRET", current),
                        *(("NEWSLETTER_SECRET_PREVIOUS", p) for p in previous)]:
        if len(value) < MIN_SECRET_LENGTH:
            raise InputError(Problem(name, None, f"a secret of {len(value)} characters is too "
                                     f"short; use at least {MIN_SECRET_LENGTH} random "
                                     "characters"))
    return [current, *previous]


def unsubscribe_url(public_url: str, secret: str, email: str) -> str:
    """The per-recipient one-click unsubscribe URL served by `newsletter serve`."""
    return f"{public_url.rstrip('/')}/unsubscribe/{make_token(secret, 'unsubscribe', email)}"


PREFERENCES = "preferences"


def preferences_url(public_url: str, secret: str, email: str) -> str:
    """The per-recipient link to the preference page served by `newsletter serve`."""
    return f"{public_url.rstrip('/')}/preferences/{make_token(secret, PREFERENCES, email)}"


def link_token(secret: str, send_id: int, position: int, email: str) -> str:
    """A short signed token naming one link of one send for one recipient (click tracking)."""
    payload = f"{send_id:x}.{position:x}.{email.lower()}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, 'click', payload)[:12])}"


def read_link_token(secrets: list[str], token: str) -> tuple[int, int, str]:
    """(send_id, position, email) of a valid link token; BadToken otherwise."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise BadToken("malformed token") from exc
    if not any(hmac.compare_digest(mac, _mac(s, "click", payload)[:12]) for s in secrets):
        raise BadToken("bad signature")
    try:
        send, position, email = payload.decode("utf-8").split(".", 2)
        return int(send, 16), int(position, 16), email
    except ValueError as exc:
        raise BadToken("malformed token") from exc


def click_url(public_url: str, token: str) -> str:
    """The redirect URL `newsletter serve` answers for a link token."""
    return f"{public_url.rstrip('/')}/c/{token}"


#: hex digits of a send or recipient id in a VERP token (ids below 2**64)
_VERP_ID_DIGITS = 16
_VERP_MAC_BYTES = 10  # 80 bits: 16 base32 characters


def _verp_mac(secret: str, payload: str) -> str:
    mac = _mac(secret, "verp", payload.encode("ascii"))[:_VERP_MAC_BYTES]
    return base64.b32encode(mac).decode("ascii").lower()


def verp_token(secret: str, send_id: int, recipient_id: int) -> str:
    """A short signed token naming one recipient row of one send, for a VERP envelope sender
    (`bounces+<token>@...`). Lower-case letters, digits and `-` only: mail systems may change
    the case of a local part, so the token reads the same in any case."""
    if send_id < 0 or recipient_id < 0:
        raise ValueError("ids are not negative")
    payload = f"{send_id:x}-{recipient_id:x}"
    return f"{payload}-{_verp_mac(secret, payload)}"


def read_verp_token(secrets: str | Sequence[str], token: str) -> tuple[int, int]:
    """(send_id, recipient_id) of a VERP token signed by one of `secrets` (any case);
    BadToken otherwise."""
    keys = _as_list(secrets)
    if not keys:
        raise BadToken("no secret to check the token with")
    parts = token.strip().lower().split("-")
    hexdigits = set("0123456789abcdef")
    if len(parts) != 3 or not all(0 < len(p) <= _VERP_ID_DIGITS and set(p) <= hexdigits
                                  for p in parts[:2]):
        raise BadToken("malformed token")
    payload = f"{parts[0]}-{parts[1]}"
    ok = False
    for secret in keys:  # every secret is tried: the time does not tell which matched
        ok |= hmac.compare_digest(parts[2].encode("ascii", "replace"),
                                  _verp_mac(secret, payload).encode("ascii"))
    if not ok:
        raise BadToken("bad signature")
    return int(parts[0], 16), int(parts[1], 16)
