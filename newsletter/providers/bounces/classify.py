"""One message from the bounce mailbox -> what it says, as `ProviderEvent`s.

In order, the first that applies decides:

1. a delivery status notification (RFC 3464, newsletter.providers.bounces.dsn): each failed
   recipient is a hard or soft bounce, each delayed one a deferral;
2. a complaint report (RFC 5965, newsletter.providers.bounces.arf);
3. an automatic reply (out of office, vacation, read receipt): ignored;
4. the non-standard bounce formats flufl.bounce knows (qmail, classic Exim, Exchange, Yahoo's,
   GroupWise, ...): permanent failures are bounces, hard or soft by the first status code in
   the text, temporary ones deferrals;
5. anything else (or a message that cannot be parsed) is unrecognised.

Which send and ledger row an event is about comes from the VERP address the bounce was sent
to (signed: `verp`), else from our Message-ID in the returned original (`message-id`: not
signed, so the events layer accepts it only when the ledger row's address agrees). An event's
id is derived from the bounce's own Message-ID (or, without one, its bytes), its recipient and
its kind, so reading the same message again yields the same ids.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime
from typing import Literal

from newsletter.compose.schema import BouncesConfig
from newsletter.providers.bounces import arf, autoreply, dsn, verp
from newsletter.providers.events import Bounce, Kind, ProviderEvent

PROVIDER = "mailbox"
#: headers of the bounce itself that may carry the VERP address it was sent to
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
#: senders that only ever send bounces
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)

Outcome = Literal["events", "ignored", "unrecognised"]
Attribution = Literal["verp", "message-id", "none"]


@dataclass(frozen=True)
class Context:
    """What reading needs from the publication."""

    bounces: BouncesConfig
    secrets: Sequence[str]  # every secret of the rotation list
    sender_domain: str  # the From domain: our Message-IDs end with @<it>


@dataclass(frozen=True)
class Reading:
    """What one mailbox message turned out to be."""

    outcome: Outcome
    what: str  # the format recognised ("DSN", ...), or why ignored or unrecognised
    events: tuple[ProviderEvent, ...] = ()
    attribution: Attribution = "none"
    subject: str = ""
    sender: str = ""
    notes: list[str] = field(default_factory=list)


def read(raw: bytes, ctx: Context, received: int = 0) -> Reading:
    """Read one raw message (`received`: the mailbox's arrival time, unix s, a fallback for a
    message without a usable Date)."""
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # noqa: BLE001 - a hostile message is this message's problem
        return Reading("unrecognised", f"cannot be parsed: {type(exc).__name__}")
    if not raw.strip() or not msg.keys():
        return Reading("unrecognised", "not a mail message (no headers)")
    subject, sender = autoreply.subject_of(msg)[:120], parseaddr(str(msg.get("From", "")))[1]
    try:
        outcome, found, what = _recognise(msg)
    except Exception as exc:  # noqa: BLE001 - a detector tripping on a hostile message
        return Reading("unrecognised", f"cannot be read: {type(exc).__name__}: {exc}"[:200],
                       subject=subject, sender=sender)
    if outcome != "events":
        return Reading(outcome, what, subject=subject, sender=sender)
    ids, attribution = _attribution(msg, raw, ctx)
    if attribution == "none" and any(not address for _, address, _, _ in found):
        return Reading("unrecognised", f"{what} that names no recipient (redacted) and no "
                       "message of ours", subject=subject, sender=sender)
    key = _message_key(msg, raw)
    when = _timestamp(msg, received)
    events = []
    for kind, address, bounce, detail in found:
        digest = hashlib.sha256(f"{key}|{kind}|{address.lower()}".encode()).hexdigest()[:32]
        events.append(ProviderEvent(PROVIDER, digest, kind, address, when,
                                    send_id=ids[0] if ids else None,
                                    recipient_id=ids[1] if ids else None,
                                    bounce=bounce, detail=detail or None))
    return Reading("events", what, tuple(events), attribution, subject, sender)


Found = tuple[Kind, str, Bounce | None, str]


def _recognise(msg: Message) -> tuple[Outcome, list[Found], str]:
    """The outcome, the events found and the format (or why it is ignored or unrecognised)."""
    if dsn.status_part(msg) is not None:
        found: list[Found] = []
        for r in dsn.recipients(msg):
            if r.action.startswith(("fail", "error")):  # opensmtpd writes `error`
                found.append((Kind.BOUNCED, r.address,
                              dsn.severity(r.status, r.diagnostic), r.detail))
            elif r.action.startswith("delay"):
                found.append((Kind.DEFERRED, r.address, None, r.detail))
        if found:
            return "events", found, "DSN (RFC 3464)"
        if dsn.recipients(msg):
            return "ignored", [], "a delivery status notification of success (no failure)"
    report = arf.report(msg)
    if report is not None:
        if not report.is_complaint:
            return "ignored", [], f"a {report.feedback_type} feedback report (no complaint)"
        detail = f"feedback-type {report.feedback_type}; {report.user_agent}".strip("; ")
        return "events", [(Kind.COMPLAINED, report.recipient, None, detail[:300])], \
            "ARF complaint (RFC 5965)"
    if not _from_daemon(msg):
        why = autoreply.reason(msg)
        if why:
            return "ignored", [], why
    return _non_standard(msg)


def _from_daemon(msg: Message) -> bool:
    """Whether the headers say it is a bounce (a mailer daemon's, or Exim's failed list)."""
    local = parseaddr(str(msg.get("From", "")))[1].partition("@")[0].lower()
    return local in _DAEMONS or msg.get("X-Failed-Recipients") is not None


def _non_standard(msg: Message) -> tuple[Outcome, list[Found], str]:
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(msg)
    text = _text_of(msg)
    found: list[Found] = []
    for raw in sorted(permanent):
        address = raw.decode("ascii", "replace")
        said = _around(text, address)
        found.append((Kind.BOUNCED, address, dsn.severity("", said), " ".join(said.split())[:300]))
    for raw in sorted(temporary - permanent):
        found.append((Kind.DEFERRED, raw.decode("ascii", "replace"), None, ""))
    if found:
        return "events", found, "non-standard bounce (flufl.bounce)"
    return "unrecognised", [], "no bounce, complaint or automatic reply found"


def _text_of(msg: Message) -> str:
    """The text parts, decoded (where a non-standard bounce says what went wrong)."""
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                chunks.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks)


def _around(text: str, address: str) -> str:
    """The lines from the one naming `address` on (its reason follows it), else all text."""
    at = text.lower().find(address.lower())
    return text[at:at + 600] if at >= 0 else text


def _attribution(msg: Message, raw: bytes, ctx: Context
                 ) -> tuple[tuple[int, int] | None, Attribution]:
    """(send id, ledger row id) and how they were found."""
    values = [str(v) for name in ENVELOPE_HEADERS for v in msg.get_all(name, [])]
    original = arf.original(msg)
    if original is not None:
        values += [str(v) for v in original.get_all("Return-Path", [])]
    report = arf.report(msg)
    if report is not None:
        values.append(report.mail_from)
    found = verp.find(values, ctx.bounces, ctx.secrets)
    if found is not None:
        return (found.send_id, found.recipient_id), "verp"
    candidates = [str(original.get("Message-ID", "")).strip().strip("<>")] if original else []
    body = raw.split(b"\r\n\r\n", 1)[-1] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[-1]
    candidates += _MESSAGE_ID.findall(body.decode("utf-8", "replace"))
    for candidate in candidates:
        ours = _our_message_id(candidate, ctx.sender_domain)
        if ours is not None:
            return ours, "message-id"
    return None, "none"


def _our_message_id(value: str, domain: str) -> tuple[int, int] | None:
    """(send id, row id) of a Message-ID we made (`<slug.send.row@domain>`), else None."""
    local, _, at = value.rpartition("@")
    parts = local.rsplit(".", 2)
    if at.lower() != domain.lower() or len(parts) != 3 or not parts[0]:
        return None
    if not (parts[1].isdigit() and parts[2].isdigit() and len(parts[1]) < 19
            and len(parts[2]) < 19):
        return None
    return int(parts[1]), int(parts[2])


def _message_key(msg: Message, raw: bytes) -> str:
    """What identifies the bounce itself: its Message-ID, else a digest of its bytes."""
    mid = " ".join(str(msg.get("Message-ID", "")).split())
    return f"mid:{mid}" if mid else f"sha:{hashlib.sha256(raw).hexdigest()}"


def _timestamp(msg: Message, received: int) -> int:
    """When the bounce was written (Date), else when the mailbox got it."""
    try:
        when = parsedate_to_datetime(str(msg.get("Date", "")))
        if when.tzinfo is None:  # "-0000": UTC, with no word on the local time
            when = when.replace(tzinfo=dt.UTC)
        if when.timestamp() > 0:
            return int(when.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    return received
