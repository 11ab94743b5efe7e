"""The Mailgun transport: `POST /v3/<domain>/messages`, form-encoded, basic auth
`api:MAILGUN_API_KEY`, in the US or EU region (`mailgun.region`), through httpx.

One request carries up to 1,000 recipients (payload.py). Mailgun answers 200 with one message
id for the whole request (`{"id": "<...>", "message": "Queued. Thank you."}`): every recipient
is accepted under that id. A 400 about the `to` parameter refuses the whole request for one
bad address without saying which: the batch is split in halves until the address is alone,
and only that recipient fails (an address the answer names fails at once, and the rest are
sent again without it). Other 400s stop the send with Mailgun's words; the rest of the answers
follow newsletter.providers.http_api.

Scheduling: Mailgun can deliver later (`o:deliverytime`, up to 3 days ahead, 7 on some plans)
but cannot cancel one send: its only cancel deletes every scheduled and undelivered message of
the domain. `--at` and `--undo-window` are refused for Mailgun (its declared capabilities).
They also name the domain's bounces, complaints and unsubscribes: read before a send, and the
address deleted from them after a confirmed sign-up (suppressions.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from newsletter.compose.provider_config import MailgunConfig
from newsletter.compose.schema import PublicationConfig
from newsletter.core.errors import FailedError
from newsletter.core.settings import Settings
from newsletter.providers.base import BatchResult, Capabilities, Outcome, Request
from newsletter.providers.http_api import (
    HttpBatchTransport,
    Reply,
    json_body,
)
from newsletter.providers.mailgun.api import api, api_url, check_domain, error_text
from newsletter.providers.mailgun.payload import MAX_RECIPIENTS, MailgunPayload
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.neutral import Releaser, SuppressionSource

#: what Mailgun's webhooks report back (newsletter.providers.mailgun.webhook)
REPORTS = frozenset({"open", "click", "bounce", "complaint", "unsubscribe"})
_TO_PARAMETER = re.compile(r"'?\bto\b'? parameter", re.IGNORECASE)
_ADDRESS = re.compile(r"[^\s'\"<>,;:]+@[^\s'\"<>,;:]+")


class MailgunTransport(HttpBatchTransport):
    name = "mailgun"
    capabilities = Capabilities(
        unscheduled="Mailgun can deliver later (o:deliverytime) but cannot cancel one send (its "
                    "only cancel deletes every scheduled message of the domain), so no undo is "
                    "possible",
        suppression_lists=True, releases=True, reports=REPORTS)
    label = "Mailgun"
    key_hint = "MAILGUN_API_KEY"
    parallel = 4

    def __init__(self, key: str | None, domain: str | None, url: str, settings: MailgunConfig,
                 *, max_batch: int | None = None, max_in_flight: int | None = None):
        in_flight = max_in_flight or settings.max_in_flight
        self.api = api(key, domain, url, connections=max(8, in_flight))
        super().__init__(self.api.base_url, max_in_flight=in_flight,
                         max_batch=min(MAX_RECIPIENTS, max_batch or MAX_RECIPIENTS))
        self.settings = settings
        self.domain = check_domain(domain)
        self.path = f"/v3/{quote(self.domain)}/messages"

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        self.payload = MailgunPayload(mailing, tracking=self.settings.tracking)
        self.batch_size = min(self.max_batch, self.payload.batch_size)

    @classmethod
    def suppression_source(cls, settings: Settings, config: PublicationConfig
                           ) -> SuppressionSource:
        """The domain's bounces, complaints and unsubscribes."""
        from newsletter.providers.mailgun.suppressions import MailgunSuppressions

        return MailgunSuppressions(settings.mailgun.api_key, settings.mailgun.domain,
                                   api_url(config.mailgun.region, settings.mailgun.api_url))

    @classmethod
    def releaser(cls, settings: Settings, config: PublicationConfig) -> Releaser | None:
        """The domain's three lists, when MAILGUN_API_KEY and MAILGUN_DOMAIN are set."""
        env = settings.mailgun
        if not env.api_key or not env.domain:
            return None
        from newsletter.providers.mailgun.suppressions import MailgunSuppressions

        return MailgunSuppressions(env.api_key, env.domain,
                                   api_url(config.mailgun.region, env.api_url))

    def preflight(self) -> None:
        """The key opens the account, and the sending domain is there and active."""
        reply = self.api.call(f"checking the domain {self.domain}", "GET",
                              f"/v3/domains/{quote(self.domain)}", key_hint=self.key_hint,
                              message=error_text)
        found = reply.json() if reply.status == 200 else None
        domain = found.get("domain") if isinstance(found, dict) else None
        if not isinstance(domain, dict):
            raise FailedError(f"Mailgun at {self.where} has no domain {self.domain}; check "
                              "MAILGUN_DOMAIN and mailgun.region (us or eu) in newsletter.yaml")
        if domain.get("state") != "active":
            raise FailedError(f"Mailgun's domain {self.domain} is {domain.get('state')}, not "
                              "active: verify its DNS records in Mailgun first")

    # -- hooks ----------------------------------------------------------------------------
    def build(self, items: Sequence[Item]) -> Request:
        body, refused = self.payload.body(items)
        return Request({"method": "POST", "path": self.path, "content": body,
                        "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                       len(body), refused)

    def read_accepted(self, items: Sequence[Item], reply: Reply) -> BatchResult:
        found = reply.json()
        message_id = found.get("id") if isinstance(found, dict) else None
        return BatchResult.all(items, Outcome("accepted", provider_id=message_id or None))

    def read_refusal(self, items: Sequence[Item], reply: Reply) -> BatchResult | None:
        """A 400 about the `to` parameter concerns some recipient: find it."""
        words = self.error_text(reply.body)
        if reply.status != 400 or not _TO_PARAMETER.search(words):
            return None
        if len(items) == 1:
            return BatchResult([Outcome("failed", error=f"Mailgun refused the address: {words}")])
        named = {a.lower().rstrip(".") for a in _ADDRESS.findall(words)}
        bad = [i for i in items if i.recipient.email.lower() in named]
        if not bad:
            return self.split(items)
        rest = [i for i in items if i not in bad]
        others = self.send(rest)
        outcomes = dict(zip((i.key for i in rest), others.outcomes, strict=True))
        outcomes.update({i.key: Outcome("failed", error=f"Mailgun refused the address: {words}")
                         for i in bad})
        return BatchResult([outcomes[i.key] for i in items], stop=others.stop, wait=others.wait)

    def error_text(self, body: bytes) -> str:
        return error_text(body)

    def own_error(self, body: bytes) -> bool:
        parsed = json_body(body)
        return isinstance(parsed, dict) and "message" in parsed

    preview_kind = ("the API request's fields", ".txt")

    def preview(self, item: Item) -> str:
        from urllib.parse import parse_qsl

        body, refused = self.payload.body([item])
        if refused:
            return f"(refused: {refused[item.key]})"
        return "\n".join(f"{key}: {value}" for key, value in parse_qsl(body.decode("ascii")))
