"""VERP: an envelope sender per message, so a bounce says which send and recipient it is about.

An SMTP send whose publication has `bounces: {return_path: bounces@news.example.org}` hands each
message over with the envelope sender (RFC 5321 MAIL FROM) `bounces+<token>@news.example.org`,
where the token names the send and the recipient's ledger row and is signed with the
publication's secret (newsletter.core.tokens.verp_token). Receiving servers send bounces to that
address; the relay delivers every `bounces+...` address to the one mailbox (plus addressing);
`parse` reads the ids back, accepting a token signed by any secret of the rotation list.

The SMTP transport's seam is `envelope_sender(mailing, key)`: the address to give MAIL FROM
for one item (the plain sender address when no bounce mailbox is configured or outside the
ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from newsletter.compose.schema import BouncesConfig
from newsletter.core.tokens import BadToken, read_verp_token, verp_token
from newsletter.providers.mailing import Mailing

DELIMITER = "+"


@dataclass(frozen=True, slots=True)
class Verp:
    """What a valid VERP address names."""

    send_id: int
    recipient_id: int


def address(return_path: str, secret: str, send_id: int, recipient_id: int) -> str:
    """`<local>+<token>@<domain>` for the return path `<local>@<domain>`."""
    local, _, domain = return_path.rpartition("@")
    return f"{local}{DELIMITER}{verp_token(secret, send_id, recipient_id)}@{domain}"


def envelope_sender(mailing: Mailing, key: int | str) -> str:
    """The MAIL FROM address for the ledger row `key` of `mailing`'s send: its VERP address
    when the publication has a bounce mailbox and the send is a ledger send, else the sender's
    own address (test sends, publications without `bounces:`)."""
    bounces = mailing.config.bounces
    if bounces is None or not mailing.send_ref.isdigit() or not str(key).isdigit():
        return mailing.config.sender.email
    return address(bounces.return_path, mailing.secret, int(mailing.send_ref), int(key))


def parse(text: str, return_path: str, secrets: str | Sequence[str]) -> Verp | None:
    """The ids named by the VERP address `text` (any case) for `return_path`; None when it is
    not one, or its token is forged, altered or signed by no secret of `secrets`."""
    candidate = text.strip().strip("<>").lower()
    local, _, domain = candidate.rpartition("@")
    base, _, base_domain = return_path.lower().rpartition("@")
    prefix = base + DELIMITER
    if not local.startswith(prefix) or domain != base_domain:
        return None
    try:
        send_id, recipient_id = read_verp_token(secrets, local[len(prefix):])
    except BadToken:
        return None
    return Verp(send_id, recipient_id)


def find(values: Sequence[str], config: BouncesConfig, secrets: Sequence[str]) -> Verp | None:
    """The first valid VERP address among header values (To, Delivered-To, Return-Path...)."""
    for _name, addr in getaddresses([v for v in values if v]):
        found = parse(addr, config.return_path, secrets) if addr else None
        if found is not None:
            return found
    return None
