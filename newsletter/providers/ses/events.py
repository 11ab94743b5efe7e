"""SES event records (as SES publishes them to SNS) in the neutral vocabulary.

A configuration set's event destination publishes one JSON record per event, with
`eventType` (or `notificationType`, for an identity's own feedback notifications) and a
`mail` object; SES copies the message's tags into `mail.tags`, so the send and the ledger row
come back from `nl_send` and `nl_recipient` (else from our Message-ID,
`<slug.send.row@domain>`, when SES kept it in `mail.commonHeaders`). What each record says:

| SES event        | neutral kind                                                        |
|------------------|---------------------------------------------------------------------|
| Bounce           | bounced: hard when `Permanent`, soft when `Transient` or            |
|                  | `Undetermined`; dropped (bounced) when SES did not send at all       |
|                  | because the address is on a suppression list (`Suppressed`,          |
|                  | `OnAccountSuppressionList`)                                          |
| Complaint        | complained; dropped (complained) for `OnAccountSuppressionList`     |
| Delivery         | delivered                                                           |
| DeliveryDelay    | deferred                                                            |
| Reject           | dropped (other): SES found a virus and sent nothing                 |
| Rendering Failure| dropped (other)                                                     |
| Open, Click      | opened, clicked (with the link, user agent, truncated IP)           |
| Subscription     | unsubscribed (unsubscribeAll), resubscribed (unsubscribeAll undone) |
| Send             | nothing (the send run already recorded the hand-over)               |

Each event's id ("ses:" and a digest) is derived from what identifies it (SES's message id, the
event type, the recipient, the event's time, the link), so a record SNS delivers twice, even
under a new SNS message id, is one event. SNS's own notice that a topic now feeds an identity's
notifications (`AmazonSnsSubscriptionSucceeded`) holds no event and is passed over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from typing import Any

from newsletter.core.privacy import truncate_ip
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent

PROVIDER = "ses"
#: event times accepted: from 2000-01-01 to a day ahead of our clock
MIN_TIMESTAMP = 946_684_800
FUTURE_SLACK_S = 86_400
SUBSCRIBED = "AmazonSnsSubscriptionSucceeded"
SUPPRESSED = frozenset({"Suppressed", "OnAccountSuppressionList"})
_MESSAGE_ID = re.compile(r"<[^<>@]*\.(\d{1,18})\.(\d{1,18})@[^<>]+>")


def _text(value: Any, limit: int = 300) -> str | None:
    return " ".join(value.split())[:limit] if isinstance(value, str) and value.strip() else None


def _seconds(value: Any) -> int | None:
    """Unix seconds of an ISO 8601 time; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _number(value: Any) -> int | None:
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def ids_of(mail: dict[str, Any]) -> tuple[int | None, int | None]:
    """(send id, ledger row) from the message's tags, else from our Message-ID."""
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    send, row = _number(tags.get("nl_send")), _number(tags.get("nl_recipient"))
    if send is None:
        headers = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) \
            else {}
        match = _MESSAGE_ID.fullmatch(str(headers.get("messageId") or "").strip())
        if match:
            send, row = int(match.group(1)), int(match.group(2))
    return send, row


def _address(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("emailAddress")
    if isinstance(value, str) and "@" in value and len(value.strip()) <= 320:
        return value.strip()
    return None


def _addresses(items: Any) -> list[str | None]:
    """Each entry's address (None for an entry without a usable one)."""
    return [_address(i) for i in items] if isinstance(items, list) else []


def parse_record(text: str, *, now: float | None = None) -> tuple[list[ProviderEvent], int]:
    """The events one SES record (the SNS message's `Message`) holds, and how many of its
    recipients' events were left out (unknown type, no usable address or time)."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return [], 1
    if isinstance(record, dict) and record.get("notificationType") == SUBSCRIBED:
        return [], 0
    if not isinstance(record, dict) or not isinstance(record.get("mail"), dict):
        return [], 1
    kind = record.get("eventType") or record.get("notificationType")
    parse = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parse is None:
        return [], 0 if kind == "Send" else 1
    mail = record["mail"]
    found: list[tuple[str | None, dict[str, Any]]] = parse(record, mail)
    send, row = ids_of(mail)
    message_id = str(mail.get("messageId") or "")
    latest = (time.time() if now is None else now) + FUTURE_SLACK_S
    events, ignored = [], 0
    for address, fields in found:
        stamp = fields.pop("timestamp", None)
        if address is None or stamp is None or not MIN_TIMESTAMP <= stamp <= latest:
            ignored += 1
            continue
        digest = hashlib.sha256("\x00".join(
            [message_id, kind, address.lower(), str(stamp), str(fields.get("url") or ""),
             str(fields.pop("at", ""))]).encode()).hexdigest()[:40]
        events.append(ProviderEvent(PROVIDER, f"{PROVIDER}:{digest}", email=address,
                                    timestamp=stamp, send_id=send, recipient_id=row, **fields))
    return events, ignored


def _when(section: dict[str, Any], mail: dict[str, Any]) -> int | None:
    return _seconds(section.get("timestamp")) or _seconds(mail.get("timestamp"))


def _section(record: dict[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    return value if isinstance(value, dict) else {}


def _bounce(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
    bounce = _section(record, "bounce")
    kind, sub = str(bounce.get("bounceType") or ""), str(bounce.get("bounceSubType") or "")
    when = _when(bounce, mail)
    found: list[tuple[str | None, dict]] = []
    entries = bounce.get("bouncedRecipients")
    for entry, address in zip(entries or [], _addresses(entries), strict=False):
        detail = _text(entry.get("diagnosticCode") if isinstance(entry, dict) else None) \
            or _text(f"{kind}/{sub}")
        if kind == "Permanent" and sub in SUPPRESSED:
            fields = {"kind": Kind.DROPPED, "reason": DropReason.BOUNCED}
        else:
            fields = {"kind": Kind.BOUNCED,
                      "bounce": Bounce.HARD if kind == "Permanent" else Bounce.SOFT}
        found.append((address, {**fields, "detail": detail, "timestamp": when}))
    return found


def _complaint(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
    complaint = _section(record, "complaint")
    suppressed = str(complaint.get("complaintSubType")) in SUPPRESSED
    fields: dict[str, Any] = ({"kind": Kind.DROPPED, "reason": DropReason.COMPLAINED}
                              if suppressed else {"kind": Kind.COMPLAINED})
    detail = _text(complaint.get("complaintFeedbackType") or complaint.get("complaintSubType"))
    when = _when(complaint, mail)
    return [(a, {**fields, "detail": detail, "timestamp": when})
            for a in _addresses(complaint.get("complainedRecipients"))]


def _delivery(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
    delivery = _section(record, "delivery")
    detail, when = _text(delivery.get("smtpResponse")), _when(delivery, mail)
    return [(a, {"kind": Kind.DELIVERED, "detail": detail, "timestamp": when})
            for a in _addresses(delivery.get("recipients"))]


def _delay(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
    delay = _section(record, "deliveryDelay")
    when = _when(delay, mail)
    found: list[tuple[str | None, dict]] = []
    entries = delay.get("delayedRecipients")
    for entry, address in zip(entries or [], _addresses(entries), strict=False):
        detail = _text(entry.get("diagnosticCode") if isinstance(entry, dict) else None) \
            or _text(delay.get("delayType"))
        found.append((address, {"kind": Kind.DEFERRED, "detail": detail, "timestamp": when}))
    return found


def _dropped(section_name: str, reason_key: str):
    def parse(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
        section = _section(record, section_name)
        fields = {"kind": Kind.DROPPED, "reason": DropReason.OTHER,
                  "detail": _text(section.get(reason_key)),
                  "timestamp": _seconds(mail.get("timestamp"))}
        return [(a, dict(fields)) for a in _addresses(mail.get("destination"))]

    return parse


def _engagement(kind: Kind, section_name: str):
    def parse(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
        section = _section(record, section_name)
        agent, ip = section.get("userAgent"), section.get("ipAddress")
        fields: dict[str, Any] = {
            "kind": kind, "timestamp": _when(section, mail),
            "user_agent": agent[:300] if isinstance(agent, str) and agent else None,
            "ip": truncate_ip(ip) if isinstance(ip, str) else None,
            "at": section.get("timestamp")}  # opens a second apart are two events
        if kind == Kind.CLICKED:
            link = section.get("link")
            if not isinstance(link, str) or not link:
                return [(None, {}) for _ in _addresses(mail.get("destination"))]
            fields["url"] = link[:4000]
        return [(a, dict(fields)) for a in _addresses(mail.get("destination"))]

    return parse


def _subscription(record: dict, mail: dict) -> list[tuple[str | None, dict]]:
    subscription = _section(record, "subscription")
    new = subscription.get("newTopicPreferences")
    old = subscription.get("oldTopicPreferences")
    now_all = isinstance(new, dict) and new.get("unsubscribeAll") is True
    was_all = isinstance(old, dict) and old.get("unsubscribeAll") is True
    if now_all == was_all:
        return []  # a topic preference changed: no list of ours follows SES's topics
    fields = {"kind": Kind.UNSUBSCRIBED if now_all else Kind.RESUBSCRIBED,
              "detail": _text(subscription.get("source")),
              "timestamp": _when(subscription, mail)}
    return [(a, dict(fields)) for a in _addresses(mail.get("destination"))]


_PARSERS = {
    "Bounce": _bounce,
    "Complaint": _complaint,
    "Delivery": _delivery,
    "DeliveryDelay": _delay,
    "Reject": _dropped("reject", "reason"),
    "Rendering Failure": _dropped("failure", "errorMessage"),
    "Open": _engagement(Kind.OPENED, "open"),
    "Click": _engagement(Kind.CLICKED, "click"),
    "Subscription": _subscription,
}
