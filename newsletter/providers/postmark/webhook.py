"""Postmark's webhooks, parsed into the neutral vocabulary (newsletter.providers.events).

Postmark posts one JSON object per event, with HTTP basic auth credentials that were written
into the webhook's URL when it was set up (POSTMARK_WEBHOOK_USER, POSTMARK_WEBHOOK_PASSWORD).
`RecordType` says what happened:

- `Delivery`: delivered; `Open`, `Click`: opened, clicked (user agent, the link, the IP);
- `Bounce`, whose `Type` decides: HardBounce and BadEmailAddress bounce hard; SoftBounce,
  Blocked and DMARCPolicy soft; Transient, DnsError and OpenRelayTest are deferred (Postmark
  keeps trying); SpamNotification is a complaint; Unsubscribe an unsubscribe; ManuallyDeactivated
  a drop; auto-replies, challenges and the like say nothing about the message and are ignored;
- `SpamComplaint`: complained;
- `SubscriptionChange`: a suppression added by hand or through Postmark's unsubscribe link
  (ManualSuppression) is an unsubscribe, and one lifted by the recipient a resubscribe; those
  for a hard bounce or a complaint come with their own Bounce or SpamComplaint post and are not
  counted twice.

The message's `Metadata` carries our send and ledger row. Postmark gives no event id except a
bounce's `ID`: the id is derived from what the post says, so a retried post is the same event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from newsletter.core.privacy import truncate_ip
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from newsletter.providers.neutral import id_number
from newsletter.providers.postmark.payload import RECIPIENT_KEY, SEND_KEY
from newsletter.providers.postmark.suppressions import unix

PROVIDER = "postmark"

#: Bounce `Type` -> (kind, hard/soft, drop reason)
BOUNCE_TYPES: dict[str, tuple[Kind, Bounce | None, DropReason | None]] = {
    "HardBounce": (Kind.BOUNCED, Bounce.HARD, None),
    "BadEmailAddress": (Kind.BOUNCED, Bounce.HARD, None),
    "SoftBounce": (Kind.BOUNCED, Bounce.SOFT, None),
    "Blocked": (Kind.BOUNCED, Bounce.SOFT, None),
    "DMARCPolicy": (Kind.BOUNCED, Bounce.SOFT, None),
    "Transient": (Kind.DEFERRED, None, None),
    "DnsError": (Kind.DEFERRED, None, None),
    "OpenRelayTest": (Kind.DEFERRED, None, None),
    "SpamNotification": (Kind.COMPLAINED, None, None),
    "SpamComplaint": (Kind.COMPLAINED, None, None),
    "Unsubscribe": (Kind.UNSUBSCRIBED, None, None),
    "ManuallyDeactivated": (Kind.DROPPED, None, DropReason.OTHER),
}


def credentials_match(header: str | None, user: str, password: str) -> bool:
    """Whether an Authorization header carries these basic auth credentials (compared in
    constant time)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{user}:{password}".encode()
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())




def _event_id(raw: dict[str, Any], record: str, email: str) -> str:
    if record in ("Bounce", "SpamComplaint") and id_number(raw.get("ID")):
        return f"pm:{record.lower()}:{raw['ID']}"
    parts = [record, str(raw.get("MessageID")), email.lower()]
    if record in ("Open", "Click", "SubscriptionChange"):
        parts += [str(raw.get("ReceivedAt") or raw.get("ChangedAt")),
                  str(raw.get("OriginalLink")), str(raw.get("SuppressSending"))]
    return "pm:" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def _subscription(raw: dict[str, Any]) -> tuple[Kind, None, None] | None:
    if raw.get("SuppressSending") is False:
        return (Kind.RESUBSCRIBED, None, None) if raw.get("Origin") == "Recipient" else None
    if raw.get("SuppressionReason") == "ManualSuppression":
        return Kind.UNSUBSCRIBED, None, None
    return None  # HardBounce, SpamComplaint: their own post says it


def parse_event(raw: Any) -> ProviderEvent | None:
    """A ProviderEvent from one decoded post, or None when it cannot be used."""
    if not isinstance(raw, dict):
        return None
    record = raw.get("RecordType")
    email = raw.get("Email") if record in ("Bounce", "SpamComplaint") else raw.get("Recipient")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    email = email.strip()
    found: tuple[Kind, Bounce | None, DropReason | None] | None
    if record == "Delivery":
        found, when = (Kind.DELIVERED, None, None), raw.get("DeliveredAt")
    elif record == "Open":
        found, when = (Kind.OPENED, None, None), raw.get("ReceivedAt")
    elif record == "Click":
        found, when = (Kind.CLICKED, None, None), raw.get("ReceivedAt")
    elif record == "Bounce":
        found, when = BOUNCE_TYPES.get(str(raw.get("Type"))), raw.get("BouncedAt")
    elif record == "SpamComplaint":
        found, when = (Kind.COMPLAINED, None, None), raw.get("BouncedAt")
    elif record == "SubscriptionChange":
        found, when = _subscription(raw), raw.get("ChangedAt")
    else:
        return None
    if found is None:
        return None
    kind, bounce, reason = found
    metadata = raw.get("Metadata") if isinstance(raw.get("Metadata"), dict) else {}
    geo = raw.get("Geo") if isinstance(raw.get("Geo"), dict) else {}
    agent, ip, link = raw.get("UserAgent"), geo.get("IP"), raw.get("OriginalLink")
    detail = raw.get("Details") or raw.get("Description")
    return ProviderEvent(
        PROVIDER, _event_id(raw, str(record), email), kind, email,
        timestamp=min(unix(when) or 0, 2**40), send_id=id_number(metadata.get(SEND_KEY)),
        recipient_id=id_number(metadata.get(RECIPIENT_KEY)), bounce=bounce, reason=reason,
        detail=str(detail)[:300] if detail else None,
        url=link[:4000] if kind == Kind.CLICKED and isinstance(link, str) else None,
        user_agent=agent[:300] if isinstance(agent, str) and agent else None,
        ip=truncate_ip(ip) if isinstance(ip, str) and ip else None)
