"""Delivery status notifications (RFC 3464) and what their status codes mean.

A DSN is a `multipart/report; report-type=delivery-status` whose `message/delivery-status`
part holds one block of per-message fields and one block per recipient (`Final-Recipient`,
`Original-Recipient`, `Action`, `Status`, `Diagnostic-Code`). `Action: failed` is a bounce,
`Action: delayed` a deferral (the sending server keeps trying); `delivered`, `relayed` and
`expanded` are no news.

Hard or soft (`severity`): a `Status` (RFC 3463) of class 4 is soft, of class 5 hard, except
the codes that say nothing against the address itself, which are soft too: X.2.2 mailbox full
and X.2.3 / X.3.4 message too big (RFC 3463 calls them persistent transient failures), and
X.7.x, a refusal for policy or security (a block list, DMARC, content). Without a usable
`Status` the enhanced code in `Diagnostic-Code`, then its SMTP reply code, decide; a failure
that gives no code at all is hard (the server gave up for good).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr

from newsletter.providers.events import Bounce

#: class.subject.detail of RFC 3463
ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
#: a basic SMTP reply code at the start of a reply ("550 ...", "smtp; 452-...")
REPLY = re.compile(r"(?:^|[;\s])([245])\d\d[\s-]")
#: class-5 codes that are not about the address (see the module's docstring)
SOFT_PERMANENT = {(2, 2), (2, 3), (3, 4)}
SOFT_SUBJECTS = {7}


@dataclass(frozen=True, slots=True)
class Recipient:
    """One per-recipient block of a DSN."""

    address: str  # Original-Recipient when given, else Final-Recipient
    action: str  # failed, delayed, delivered, relayed, expanded (lower case)
    status: str  # e.g. 5.1.1 ("" when missing)
    diagnostic: str  # Diagnostic-Code, one line ("" when missing)

    @property
    def detail(self) -> str:
        """Status and diagnostic, shortened, for people."""
        return " ".join(f"{self.status} {self.diagnostic}".split())[:300]


def severity(status: str, text: str = "") -> Bounce:
    """Hard or soft for an RFC 3463 status, else for the first code found in `text`."""
    match = ENHANCED.search(status) or ENHANCED.search(text)
    if match:
        klass, subject, detail = (int(g) for g in match.groups())
        if klass == 4 or (subject, detail) in SOFT_PERMANENT or subject in SOFT_SUBJECTS:
            return Bounce.SOFT
        return Bounce.HARD
    reply = REPLY.search(text)
    if reply and reply.group(1) == "4":
        return Bounce.SOFT
    return Bounce.HARD


def _address(field: str | None) -> str:
    """The address of an `rfc822; user@example.org` field ("" for other address types)."""
    if not field:
        return ""
    kind, _, value = str(field).partition(";")
    if not value:  # some servers leave the type out
        kind, value = "rfc822", kind
    if kind.strip().lower() not in ("rfc822", "x-unknown"):
        return ""
    address = parseaddr(value.strip())[1] or value.strip().strip("<>")
    return address if "@" in address and not any(c.isspace() for c in address) else ""


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part, however the parser left it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = part.get_payload(decode=True)
    if not isinstance(text, bytes):
        return []
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.decode("utf-8", "replace").strip())
    return [HeaderParser().parsestr(block) for block in blocks if block.strip()]


def status_part(msg: Message) -> Message | None:
    """The message/delivery-status part of a DSN (None when `msg` is not one)."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return part
    return None


def recipients(msg: Message) -> list[Recipient]:
    """Every per-recipient block of a DSN, in order (none when `msg` is no DSN)."""
    part = status_part(msg)
    if part is None:
        return []
    found = []
    for block in _blocks(part):  # the per-message block has no Action and is passed over
        address = _address(block.get("Original-Recipient")) or \
            _address(block.get("Final-Recipient")) or _address(block.get("X-Actual-Recipient"))
        action = str(block.get("Action", "")).strip().lower().split()[0:1]
        if not address or not action:
            continue
        status = ENHANCED.search(str(block.get("Status", "")))
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        found.append(Recipient(address, action[0].rstrip(";"),
                               status.group(0) if status else "", diagnostic))
    return found
