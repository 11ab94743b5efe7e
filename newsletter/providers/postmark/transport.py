"""The Postmark transport: `POST /email/batch` with the server token, through httpx.

One request carries up to 500 whole messages (fewer when they are large: see payload.py).
Postmark answers 200 with one result per message, in order: `ErrorCode` 0 is accepted (its
`MessageID` is the provider id); 406 (an inactive recipient: it bounced hard or complained
before) and 300 about the recipient's address fail that recipient alone; any other code stops
the send with Postmark's words (a sender signature, the account, the message stream...: trouble
every message meets). Answers for the whole request follow newsletter.providers.http_api.

Postmark has no scheduled sending: `--at` and `--undo-window` are refused before anything is
sent (its declared capabilities say so). They also name the message stream's suppressions: read
before a send, and reactivated after a confirmed sign-up (suppressions.py; not a SpamComplaint).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from newsletter.compose.provider_config import PostmarkConfig
from newsletter.compose.schema import PublicationConfig
from newsletter.core.errors import FailedError
from newsletter.core.settings import Settings
from newsletter.providers.base import BatchResult, Capabilities, Outcome, Request
from newsletter.providers.http_api import (
    HttpBatchTransport,
    Reply,
    json_body,
    short,
)
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.neutral import Releaser, SuppressionSource
from newsletter.providers.postmark.api import api, error_text
from newsletter.providers.postmark.payload import MAX_MESSAGES, PostmarkPayload

#: ErrorCodes that concern one message's recipient: that recipient fails, the rest go on
INACTIVE_RECIPIENT = 406
INVALID_REQUEST = 300
#: what Postmark's webhooks report back (newsletter.providers.postmark.webhook)
REPORTS = frozenset({"open", "click", "bounce", "complaint", "unsubscribe"})
_RECIPIENT_FIELD = re.compile(r"'(To|Cc|Bcc)'", re.IGNORECASE)


class PostmarkTransport(HttpBatchTransport):
    name = "postmark"
    capabilities = Capabilities(
        unscheduled="Postmark has no scheduled sending; its batch API sends at once",
        suppression_lists=True, releases=True, reports=REPORTS)
    label = "Postmark"
    key_hint = "POSTMARK_SERVER_TOKEN"
    parallel = 4

    def __init__(self, token: str | None, api_url: str, settings: PostmarkConfig, *,
                 max_batch: int | None = None, max_in_flight: int | None = None):
        in_flight = max_in_flight or settings.max_in_flight
        self.api = api(token, api_url, connections=max(8, in_flight))
        super().__init__(self.api.base_url, max_in_flight=in_flight,
                         max_batch=min(MAX_MESSAGES, max_batch or MAX_MESSAGES))
        self.settings = settings

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        settings = self.settings
        self.payload = PostmarkPayload(mailing, settings.message_stream,
                                       track_opens=settings.track_opens,
                                       track_links=settings.track_links)
        self.batch_size = min(self.max_batch, self.payload.batch_size)

    @classmethod
    def suppression_source(cls, settings: Settings, config: PublicationConfig
                           ) -> SuppressionSource:
        """The suppression dump of the publication's message stream."""
        from newsletter.providers.postmark.suppressions import PostmarkSuppressions

        return PostmarkSuppressions(settings.postmark.server_token, settings.postmark.api_url,
                                    config.postmark.message_stream)

    @classmethod
    def releaser(cls, settings: Settings, config: PublicationConfig) -> Releaser | None:
        """The message stream's suppressions, when POSTMARK_SERVER_TOKEN is set."""
        if not settings.postmark.server_token:
            return None
        from newsletter.providers.postmark.suppressions import PostmarkSuppressions

        return PostmarkSuppressions(settings.postmark.server_token, settings.postmark.api_url,
                                    config.postmark.message_stream)

    def preflight(self) -> None:
        """The token opens the server, and the message stream exists and is a Broadcasts
        stream (Postmark's rule for newsletters)."""
        self.api.call("checking the server token", "GET", "/server", key_hint=self.key_hint,
                      message=error_text)
        stream = self.settings.message_stream
        reply = self.api.call(f"checking the message stream {stream!r}", "GET",
                              f"/message-streams/{stream}", key_hint=self.key_hint,
                              message=error_text, expected=(404, 422))
        found = reply.json() if reply.status == 200 else None
        if not isinstance(found, dict):
            raise FailedError(f"Postmark has no message stream {stream!r} on this server; set "
                              "postmark.message_stream in newsletter.yaml to a Broadcasts stream")
        if found.get("MessageStreamType") != "Broadcasts":
            raise FailedError(f"Postmark's message stream {stream!r} is a "
                              f"{found.get('MessageStreamType')} stream; newsletters go through "
                              "a Broadcasts stream (postmark.message_stream in newsletter.yaml)")

    # -- hooks ----------------------------------------------------------------------------
    def build(self, items: Sequence[Item]) -> Request:
        body, refused = self.payload.body(items)
        return Request({"method": "POST", "path": "/email/batch", "content": body,
                        "headers": {"Content-Type": "application/json"}}, len(body), refused)

    def read_accepted(self, items: Sequence[Item], reply: Reply) -> BatchResult:
        results = reply.json()
        if not isinstance(results, list) or len(results) != len(items):
            return BatchResult.all(items, Outcome(
                "unknown", error="Postmark answered 200 without one result per message; "
                                 "the messages may have been taken"))
        outcomes, stop = [], None
        for result in results:
            outcome, halt = self._result(result)
            outcomes.append(outcome)
            stop = stop or halt
        return BatchResult(outcomes, stop=stop)

    def _result(self, result: Any) -> tuple[Outcome, str | None]:
        """One message's outcome, and the reason to stop the send (if it is one)."""
        if not isinstance(result, dict):
            return Outcome("unknown", error="Postmark's result for it is unreadable"), None
        code, words = result.get("ErrorCode", 0), short(str(result.get("Message") or ""))
        if code == 0:
            return Outcome("accepted", provider_id=str(result.get("MessageID") or "") or None), None
        if code == INACTIVE_RECIPIENT:
            return Outcome("failed", error=f"Postmark: inactive recipient (406): {words}"), None
        if code == INVALID_REQUEST and _RECIPIENT_FIELD.search(words):
            return Outcome("failed", error=f"Postmark: invalid address (300): {words}"), None
        reason = f"Postmark refused the message (ErrorCode {code}): {words}"
        return Outcome("retry", error=reason), reason

    def error_text(self, body: bytes) -> str:
        return error_text(body)

    def own_error(self, body: bytes) -> bool:
        parsed = json_body(body)
        return isinstance(parsed, dict) and "ErrorCode" in parsed

    preview_kind = ("the API request", ".json")

    def preview(self, item: Item) -> str:
        import json

        body, refused = self.payload.body([item])
        if refused:
            return f"(refused: {refused[item.key]})"
        return json.dumps(json.loads(body)[0], indent=2, ensure_ascii=False)
