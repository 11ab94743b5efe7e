"""The SendGrid transport: the official `sendgrid` client against the v3 Mail Send API.

One request carries up to 1000 recipients (fewer when the template uses many personal values;
see payload.py). Answers are read by the rules every HTTP provider shares
(newsletter.providers.http_api): 202 accepted; 429 and 5xx retried (429 waits for
X-RateLimit-Reset); 413 splits the batch; 401/403 and other 4xx stop the send with SendGrid's
own message. A request that left but got no answer is `unknown`.

How many requests are in flight adapts to SendGrid's answers (newsletter.providers.pacing),
up to `sendgrid.max_in_flight` in newsletter.yaml (default 8; the environment variable
NEWSLETTER_SENDGRID_IN_FLIGHT overrides it); no request leaves before an X-RateLimit-Reset
that SendGrid asked us to wait for.

Declared capabilities: scheduled sends (`send_at` under a batch id that can be cancelled until
10 minutes before; `sendgrid.undo_window` gives new sends an undo window), the suppression
lists (suppressions.py) and the Event Webhook's events (webhook.py).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import urllib.error
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.providers.base import BatchResult, Capabilities, Outcome, Request, Scheduling
from newsletter.providers.http_api import HttpBatchTransport, Lost, NotSent, Reply
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.pacing import Pacer
from newsletter.providers.sendgrid.answers import provider_message, sendgrid_error_body
from newsletter.providers.sendgrid.bodies import Bodies
from newsletter.providers.sendgrid.payload import (
    MAX_SCHEDULE_AHEAD,
    TARGET_REQUEST_BYTES,
    PayloadBuilder,
)

if TYPE_CHECKING:
    from newsletter.compose.schema import PublicationConfig
    from newsletter.core.settings import Settings
    from newsletter.providers.neutral import Releaser, SuppressionSource
    from newsletter.providers.sendgrid.suppressions import SendGridLists

DEFAULT_TIMEOUT = 60.0
#: SendGrid's scheduled sends: 72 hours ahead at most, cancelled until 10 minutes before, at
#: most 10 batch ids cancelled or paused at a time
SCHEDULING = Scheduling("SendGrid", max_ahead=MAX_SCHEDULE_AHEAD,
                        cancel_deadline=dt.timedelta(minutes=10), max_cancelled=10)
#: what the Event Webhook reports back (webhook.py)
REPORTS = frozenset({"open", "click", "bounce", "complaint", "unsubscribe"})


def _lists(settings: Settings, config: PublicationConfig) -> SendGridLists:
    """The account's suppression lists and the publication's unsubscribe group."""
    from newsletter.providers.sendgrid.suppressions import SendGridLists

    return SendGridLists(settings.sendgrid_api_key, settings.sendgrid_api_url,
                         config.sendgrid.asm_group_id)


class _Payload:
    """A request body as JSON (UTF-8 bytes), for the client.

    The client takes a text body (with a Content-Type other than plain "application/json")
    and encodes it, so this hands over the bytes as they are when asked to encode; the client
    then formats the bytes into a debug log line whether or not debug logging is on: a
    megabyte repr per request. Its bytes print short.
    """

    def __init__(self, data: bytes):
        self.data = _Bytes(data)

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.data


class _Bytes(bytes):
    def __format__(self, spec: str) -> str:
        return f"<{len(self):,} bytes>"


class SendGridTransport(HttpBatchTransport):
    name = "sendgrid"
    capabilities = Capabilities(scheduling=SCHEDULING, suppression_lists=True, releases=True,
                                reports=REPORTS, flags_machine_opens=True)  # sg_machine_open
    label = "SendGrid"
    key_hint = "SENDGRID_API_KEY"
    credentials = "the API key"
    max_request_bytes = TARGET_REQUEST_BYTES
    parallel = 8  # worker threads; the pacer decides how many requests are in flight

    def __init__(self, api_key: str | None, api_url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 max_batch: int | None = None, max_in_flight: int | None = None):
        if not api_key:
            raise NewsletterError("SENDGRID_API_KEY is not set; "
                                  "create an API key with Mail Send permission in SendGrid")
        from sendgrid import SendGridAPIClient

        self.client = SendGridAPIClient(api_key=api_key, host=api_url).client
        # A second client posts JSON we serialised ourselves (to size the request first): with
        # a Content-Type other than plain "application/json" the client sends text as it is.
        self.raw = SendGridAPIClient(api_key=api_key, host=api_url).client
        self.raw.request_headers["Content-Type"] = "application/json; charset=utf-8"
        self.where = self.api_url = api_url
        self.timeout = timeout
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight  # overrides the publication's sendgrid.max_in_flight
        self.pacer = Pacer(max_in_flight or 8)

    def open(self, mailing: Mailing) -> None:
        self.parallel = self.max_in_flight or mailing.config.sendgrid.max_in_flight
        super().open(mailing)
        self.builder = PayloadBuilder(mailing)
        self.bodies = Bodies(mailing, self.builder)  # from the second batch on, a child builds
        self.batch_size = min(self.builder.batch_size, self.max_batch or self.builder.batch_size)

    def close(self) -> None:
        """Stop the body-building child, if one runs (the official client opens a connection
        per request: nothing else to release)."""
        bodies = getattr(self, "bodies", None)
        if bodies is not None:
            bodies.close()

    # -- calls ----------------------------------------------------------------------------
    def _call(self, what: str, do) -> Any:
        """Run one API call, turning errors into one clear FailedError."""
        from python_http_client.exceptions import HTTPError

        try:
            return do()
        except HTTPError as exc:
            message = provider_message(exc.body)
            if exc.status_code in (401, 403):
                raise FailedError(f"SendGrid refused the API key ({exc.status_code}) while "
                                  f"{what}: {message or 'check SENDGRID_API_KEY'}") from None
            raise FailedError(f"SendGrid answered {exc.status_code} while {what}: "
                              f"{message or exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FailedError(f"cannot reach SendGrid at {self.api_url} while {what}: "
                              f"{reason}") from None

    def preflight(self) -> None:
        """Check the API key and its Mail Send permission before anything is sent."""
        response = self._call("checking the API key",
                              lambda: self.client.scopes.get(timeout=self.timeout))
        try:
            scopes = set(json.loads(response.body or b"{}").get("scopes") or [])
        except ValueError:
            scopes = set()
        if "mail.send" not in scopes:
            raise FailedError("the SendGrid API key lacks the Mail Send permission (mail.send)")

    # -- scheduling (declared) ------------------------------------------------------------
    def create_batch_id(self) -> str:
        """A new batch id, so a scheduled send can be cancelled."""
        response = self._call("creating a batch id",
                              lambda: self.client.mail.batch.post(timeout=self.timeout))
        return json.loads(response.body)["batch_id"]

    def cancel(self, batch_id: str) -> None:
        """Cancel every message of a scheduled batch."""
        body = {"batch_id": batch_id, "status": "cancel"}
        self._call("cancelling the scheduled send", lambda: self.client.user.scheduled_sends.post(
            request_body=body, timeout=self.timeout))

    @classmethod
    def undo_window(cls, config: PublicationConfig) -> str | None:
        return config.sendgrid.undo_window

    # -- suppression lists (declared) -----------------------------------------------------
    @classmethod
    def suppression_source(cls, settings: Settings, config: PublicationConfig
                           ) -> SuppressionSource:
        return _lists(settings, config)

    @classmethod
    def releaser(cls, settings: Settings, config: PublicationConfig) -> Releaser | None:
        """SendGrid's lists (and the unsubscribe group), when SENDGRID_API_KEY is set."""
        return _lists(settings, config) if settings.sendgrid_api_key else None

    # -- the hooks ------------------------------------------------------------------------
    def build(self, items: Sequence[Item]) -> Request:
        """The request body, serialised (one is built at a time, so the personalization
        dicts of one batch, not of every batch in flight, are in memory)."""
        data, rejected = self.bodies.request(items)
        return Request(data, len(data), rejected)

    def refusals(self, items: Sequence[Item]) -> dict[int, str]:
        """A dry run's check builds the personalizations here, never in the body child (nor
        serialised): what they refuse is all it needs."""
        return self.builder.body(items)[1]

    def request(self, body: bytes) -> Reply:
        """POST /v3/mail/send through the official client."""
        from python_http_client.exceptions import HTTPError

        try:
            response = self.raw.mail.send.post(request_body=_Payload(body), timeout=self.timeout)
        except HTTPError as exc:
            return Reply(exc.status_code, exc.body or b"", exc.headers or {}, exc.reason or "")
        except urllib.error.URLError as exc:
            # urllib raises URLError while connecting or sending: the request did not arrive.
            raise NotSent(f"cannot reach SendGrid: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            # The request went out; the answer was lost.
            raise Lost(f"no answer from SendGrid: {exc or type(exc).__name__}") from None
        return Reply(response.status_code, response.body or b"", response.headers or {})

    def read_accepted(self, items: Sequence[Item], reply: Reply) -> BatchResult:
        message_id = reply.headers.get("X-Message-Id")
        return BatchResult.all(items, Outcome("accepted", provider_id=message_id))

    def error_text(self, body: bytes) -> str:
        return provider_message(body)

    def own_error(self, body: bytes) -> bool:
        return sendgrid_error_body(body)

    preview_kind = ("the API request", ".json")

    def preview(self, item: Item) -> str:
        body, rejected = self.builder.body([item])
        if rejected:
            return f"(rejected: {rejected[item.key]})"
        return json.dumps(body, indent=2, ensure_ascii=False)
