"""Signed Event Webhook: ECDSA (P-256, SHA-256) over the timestamp header plus the raw body.

SendGrid shows the verification key as base64 DER (SubjectPublicKeyInfo); PEM is accepted too.
The body must be the bytes exactly as received: re-encoding JSON breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import time

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE_S = 300


class BadSignature(ValueError):
    """The request is not signed by SendGrid's key, or is too old to trust."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key from SENDGRID_WEBHOOK_PUBLIC_KEY; ValueError when it is not an EC public key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a base64 public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve (ECDSA) public key")
    return key


def verify(key: ec.EllipticCurvePublicKey, signature: str | None, timestamp: str | None,
           body: bytes, *, now: float | None = None, max_age: int = MAX_AGE_S) -> None:
    """Raise BadSignature unless `signature` signs `timestamp + body` and the time is fresh."""
    if not signature or not timestamp:
        raise BadSignature("missing signature headers")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise BadSignature("bad timestamp")
    age = (time.time() if now is None else now) - int(timestamp)
    if age > max_age or age < -max_age:
        raise BadSignature("timestamp outside the accepted window")
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise BadSignature("signature does not match") from None


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The signature header value SendGrid would send (for tests and the benchmark)."""
    raw = private_key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode("ascii")


def public_key_text(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The base64 DER public key, as SendGrid shows it (for tests and the benchmark)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")
