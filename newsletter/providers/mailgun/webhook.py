"""Mailgun's signed webhooks: the signature check and the events in the neutral vocabulary.

Mailgun posts one JSON object per event: `{"signature": {"timestamp", "token", "signature"},
"event-data": {...}}`. The signature is the hex HMAC-SHA256 of timestamp + token under the
webhook signing key (MAILGUN_WEBHOOK_SIGNING_KEY). It covers neither the body nor the URL, so a
captured post could be replayed with other event data: a post is taken only while its timestamp
is within MAX_AGE_S of now, and only once per token (the tokens seen are remembered in the
database for that window: newsletter.events.apply).

`event-data.event`: delivered; failed with `severity` temporary (Mailgun keeps trying:
deferred) or permanent (`reason` suppress-bounce, suppress-unsubscribe, suppress-complaint:
dropped because of an earlier bounce, unsubscribe or complaint; espblock: dropped; old: it
could not be delivered for days, a soft bounce; otherwise a hard bounce); complained;
unsubscribed; opened; clicked. Others (accepted, rejected, stored) are ignored. Our send and
ledger row come back in `user-variables`. The event id is Mailgun's `id` (unique within a day)
with the event's day.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from newsletter.core.privacy import truncate_ip
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from newsletter.providers.mailgun.payload import RECIPIENT_KEY, SEND_KEY
from newsletter.providers.neutral import id_number

PROVIDER = "mailgun"
MAX_AGE_S = 300  # how far a post's timestamp may be from now
TOKEN_LENGTH = (20, 100)  # Mailgun's tokens are 50 characters; anything far off is refused

_SUPPRESSED = {"suppress-bounce": DropReason.BOUNCED,
               "suppress-unsubscribe": DropReason.UNSUBSCRIBED,
               "suppress-complaint": DropReason.COMPLAINED, "espblock": DropReason.OTHER}
_SIMPLE = {"delivered": Kind.DELIVERED, "complained": Kind.COMPLAINED,
           "unsubscribed": Kind.UNSUBSCRIBED, "opened": Kind.OPENED, "clicked": Kind.CLICKED}


class BadSignature(ValueError):
    """The post is not signed by the signing key, or too old (or too new) to trust."""


def signature_of(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def verify(key: str, payload: Any, *, now: float | None = None,
           max_age: int = MAX_AGE_S) -> tuple[str, int]:
    """(token, timestamp) of a post whose signature block is right and fresh; BadSignature
    otherwise. The caller refuses a token it has seen before."""
    block = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        raise BadSignature("no signature block")
    timestamp, token, signature = (block.get(k) for k in ("timestamp", "token", "signature"))
    timestamp = str(timestamp) if isinstance(timestamp, int) else timestamp
    if not (isinstance(timestamp, str) and timestamp.isdigit() and len(timestamp) <= 12
            and isinstance(token, str) and isinstance(signature, str)):
        raise BadSignature("incomplete signature block")
    if not TOKEN_LENGTH[0] <= len(token) <= TOKEN_LENGTH[1] or not token.isascii():
        raise BadSignature("bad token")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > max_age:
        raise BadSignature("timestamp outside the accepted window")
    if not hmac.compare_digest(signature_of(key, timestamp, token).encode(),
                               signature.encode("ascii", "replace")):
        raise BadSignature("signature does not match")
    return token, int(timestamp)




def _failed(data: dict[str, Any]) -> tuple[Kind, Bounce | None, DropReason | None]:
    if data.get("severity") == "temporary":
        return Kind.DEFERRED, None, None
    reason = str(data.get("reason") or "")
    if reason in _SUPPRESSED:
        return Kind.DROPPED, None, _SUPPRESSED[reason]
    return Kind.BOUNCED, Bounce.SOFT if reason == "old" else Bounce.HARD, None


def parse_event(payload: Any) -> ProviderEvent | None:
    """A ProviderEvent from one decoded post, or None when it cannot be used."""
    data = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return None
    name, email, mailgun_id = data.get("event"), data.get("recipient"), data.get("id")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    if not isinstance(mailgun_id, str) or not 0 < len(mailgun_id) <= 60:
        return None
    if name == "failed":
        kind, bounce, reason = _failed(data)
    elif name in _SIMPLE:
        kind, bounce, reason = _SIMPLE[name], None, None
    else:
        return None
    stamp = data.get("timestamp")
    seconds = int(stamp) if isinstance(stamp, (int, float)) and 0 < stamp < 2**40 else 0
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) \
        else {}
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) \
        else {}
    client = data.get("client-info") if isinstance(data.get("client-info"), dict) else {}
    detail = status.get("message") or status.get("description") or data.get("reason")
    agent, ip, url = client.get("user-agent"), data.get("ip"), data.get("url")
    return ProviderEvent(
        PROVIDER, f"mg:{mailgun_id}:{seconds // 86400}", kind, email.strip(),
        timestamp=seconds, send_id=id_number(variables.get(SEND_KEY)),
        recipient_id=id_number(variables.get(RECIPIENT_KEY)), bounce=bounce, reason=reason,
        detail=str(detail)[:300] if detail else None,
        url=url[:4000] if kind == Kind.CLICKED and isinstance(url, str) else None,
        user_agent=agent[:300] if isinstance(agent, str) and agent else None,
        ip=truncate_ip(ip) if isinstance(ip, str) and ip else None)
