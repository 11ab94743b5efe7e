"""Complaint reports in the Abuse Reporting Format (RFC 5965), as feedback loops send them.

An ARF report is a `multipart/report; report-type=feedback-report`: a human-readable part, a
`message/feedback-report` part (`Feedback-Type`, `Original-Rcpt-To`, `Arrival-Date`, ...)
and the complained-about message or its headers (`message/rfc822` or
`text/rfc822-headers`). Feedback types `abuse`, `fraud`, `virus` and `other` are complaints;
`not-spam` and `auth-failure` (a DMARC failure report, RFC 6591) are not.

Providers often redact the recipient (Yahoo's and Microsoft's loops do), so the address may be
missing here: the VERP address in the original's Return-Path or our Message-ID then names the
recipient (newsletter.providers.bounces.classify).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

COMPLAINTS = frozenset({"abuse", "fraud", "virus", "other"})
#: what loops write in place of a redacted address
_REDACTED = re.compile(r"redacted|^x+@|@x+$|\*\*\*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Report:
    """The fields of one feedback report that matter here."""

    feedback_type: str  # lower case: abuse, fraud, not-spam, auth-failure, ...
    recipient: str  # "" when the report redacts or omits it
    arrival: str  # Arrival-Date as written ("" when missing)
    user_agent: str
    mail_from: str  # Original-Mail-From: our envelope sender (a VERP address), when given

    @property
    def is_complaint(self) -> bool:
        return self.feedback_type in COMPLAINTS


def _fields(part: Message) -> Message:
    """The report's fields, however the parser left the message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload or "")
    return HeaderParser().parsestr(text.strip())


def clean_address(value: str | None) -> str:
    """An address from a header value, or "" when missing or redacted."""
    address = parseaddr(str(value or ""))[1]
    if "@" not in address or _REDACTED.search(address):
        return ""
    return address


def report(msg: Message) -> Report | None:
    """The feedback report in `msg`, or None when `msg` is no ARF report."""
    if msg.get_content_type() != "multipart/report" or \
            str(msg.get_param("report-type", "")).lower() != "feedback-report":
        return None
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _fields(part)
            kind = str(fields.get("Feedback-Type", "")).strip().lower()
            recipient = clean_address(fields.get("Original-Rcpt-To"))
            if not recipient:
                recipient = _original_to(msg)
            return Report(kind or "other", recipient, str(fields.get("Arrival-Date", "")),
                          str(fields.get("User-Agent", "")),
                          str(fields.get("Original-Mail-From", "")))
    return None


def original(msg: Message) -> Message | None:
    """The returned original's headers (from message/rfc822 or text/rfc822-headers)."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return HeaderParser().parsestr(raw.decode("utf-8", "replace"))
    return None


def _original_to(msg: Message) -> str:
    """The one To address of the returned original, when it has exactly one."""
    headers = original(msg)
    if headers is None:
        return ""
    found = [clean_address(a) for _, a in getaddresses(headers.get_all("To", []))]
    found = [a for a in found if a]
    return found[0] if len(found) == 1 else ""
