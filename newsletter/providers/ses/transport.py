"""The SES transport: one SES v2 `SendEmail` per recipient, carrying our own MIME message.

Why `SendEmail` with `Content.Raw` rather than `SendBulkEmail` with a template: every message
is personalised by substitution (the unsubscribe link and its List-Unsubscribe header, the
preference link, tracked links, names and attributes), with our escaping rules (HTML-escaped
in the HTML part, verbatim in the text part). A raw message per recipient is exactly what the
outbox and SMTP transports produce (newsletter.providers.mime), headers included; SES
templates would have to be created in the account and deleted again, use their own escaping,
and could not carry a different List-Unsubscribe header per entry without a second mechanism.
Bulk calls would not send any faster either: SES's limit is messages per second
(MaxSendRate), whichever call carries them.

The account's MaxSendRate is read once (`GetAccount`, in `preflight`) and obeyed by every
thread together (newsletter.providers.ses.rate); up to `ses.max_in_flight` requests are in
flight (NEWSLETTER_SES_IN_FLIGHT overrides it), as many as that rate needs. Each answer maps
to the ledger's outcomes as newsletter.providers.ses.answers says. The message carries the
List-Unsubscribe and List-Unsubscribe-Post headers, and EmailTags naming the send, the ledger
row and the issue, which SES copies into every event it publishes for the configuration set
(`ses.configuration_set`).

It fills the provider contract's hooks (newsletter.providers.base): `build` makes each
recipient's SendEmail parameters (refusing what SES would not take), `post` hands them over;
its capabilities declare the account's suppression list (suppressions.py, released after a
confirmed sign-up) and the events SNS brings back (events.py), and no scheduling.

Each worker hands its batch over one message at a time and reports each outcome as it comes
(`reports_each_outcome`, as SMTP does): recording one message's outcome commits the next as in
flight, in the same ledger transaction. A crash therefore leaves at most one message unknown
per request in flight, alone in its batch's unknown rows (`--accept-batch` /
`--resend-batch`), while the ledger is read and the consent check asked once per BATCH
recipients rather than once per message.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.compose.provider_config import SesConfig
from newsletter.core.errors import FailedError
from newsletter.providers.base import (
    BatchResult,
    Capabilities,
    Outcome,
    OutcomeSink,
    Request,
    Transport,
)
from newsletter.providers.mailing import Item, Mailing, Unsendable, on_the_wire, wire_address
from newsletter.providers.mime import MimeRenderer
from newsletter.providers.ses import answers
from newsletter.providers.ses.client import error_parts, make_client
from newsletter.providers.ses.rate import RateLimit, RatePacer

if TYPE_CHECKING:
    from newsletter.compose.schema import PublicationConfig
    from newsletter.core.settings import Settings
    from newsletter.providers.ses.suppressions import SesSuppressions

log = logging.getLogger("newsletter.dispatch")

#: SES v2 takes raw messages of up to 40 MB
MAX_RAW_BYTES = 40 * 1024 * 1024
#: the longest answer time the in-flight count is sized for (rate x this, plus one)
SIZED_FOR_LATENCY_S = 1.0
#: this many messages in a row rejected alike (not for their address) stop the send
REJECTIONS_IN_A_ROW = 10
#: the rate assumed when the account cannot be read (SES's sandbox rate)
FALLBACK_RATE = 1.0
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
#: what the configuration set's event destination (SNS, web/ses_webhook.py) reports back
REPORTS = frozenset({"open", "click", "bounce", "complaint", "unsubscribe"})


def tag_value(text: str) -> str:
    """A value SES accepts in a message tag (ASCII letters, digits, '_' and '-')."""
    return _TAG_UNSAFE.sub("_", text)[:256] or "_"


@dataclass(frozen=True)
class Account:
    """What `GetAccount` says about sending."""

    max_rate: float
    max_24h: float
    sent_24h: float
    production: bool
    enabled: bool
    enforcement: str

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Account:
        quota = answer.get("SendQuota") or {}
        return cls(max_rate=float(quota.get("MaxSendRate") or FALLBACK_RATE),
                   max_24h=float(quota.get("Max24HourSend") or 0),
                   sent_24h=float(quota.get("SentLast24Hours") or 0),
                   production=bool(answer.get("ProductionAccessEnabled")),
                   enabled=bool(answer.get("SendingEnabled", True)),
                   enforcement=str(answer.get("EnforcementStatus") or "HEALTHY"))


class SesTransport(Transport):
    name = "ses"
    label = "SES"
    capabilities = Capabilities(
        unscheduled="SES has no scheduled sending and cannot cancel a message SendEmail took",
        suppression_lists=True, releases=True, reports=REPORTS)
    batch_size = 20  # recipients per hand-over; one SendEmail each (the module's docstring)
    reports_each_outcome = True
    parallel = 2

    def __init__(self, config: SesConfig | None = None, *, in_flight: int | None = None,
                 client: Any = None) -> None:
        self.config = config
        self.in_flight = in_flight  # NEWSLETTER_SES_IN_FLIGHT
        self._client = client
        self.account: Account | None = None
        self._lock = threading.Lock()
        self._limit: RateLimit | None = None
        self._rejections: tuple[str, int] = ("", 0)
        self.stopped: str | None = None  # the answer that stopped the send, once one did
        self.where = "Amazon SES"

    # -- setup ----------------------------------------------------------------------------
    def _settings(self) -> SesConfig:
        if self.config is not None:
            return self.config
        mailing = getattr(self, "mailing", None)
        return mailing.config.ses if mailing is not None else SesConfig()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self._settings().region, pool=self._cap())
            return self._client

    def _cap(self) -> int:
        return self.in_flight or self._settings().max_in_flight

    def _read_account(self) -> Account:
        from botocore import exceptions as bx

        client = self.client
        url = client.meta.endpoint_url
        try:
            found = Account.of(client.get_account())
        except bx.ClientError as exc:
            code, message, status = error_parts(exc)
            if code in answers.AUTH_CODES:
                raise FailedError(f"SES refused the AWS credentials ({code}: {message}); check "
                                  "them and that they may call ses:GetAccount and "
                                  "ses:SendEmail") from None
            raise FailedError(f"SES answered {status} to GetAccount: {code}: {message}") from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
            raise FailedError(f"no AWS credentials for SES ({exc}); set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role") from None
        except bx.BotoCoreError as exc:
            raise FailedError(f"cannot reach SES at {url}: {exc}") from None
        self.where = (f"{url} ({client.meta.region_name}, at most {found.max_rate:g} "
                      "messages/s)")
        return found

    def preflight(self) -> None:
        """Read the account's sending quota; refuse when SES would not send anything."""
        account = self._read_account()
        if not account.enabled:
            raise FailedError("SES has sending disabled for this account (GetAccount: "
                              "SendingEnabled false); nothing can be sent")
        if account.enforcement.upper() == "SHUTDOWN":
            raise FailedError("SES has shut down sending for this account (EnforcementStatus "
                              "SHUTDOWN)")
        self._use(account)

    def _use(self, account: Account) -> None:
        self.account = account
        self._limit = RateLimit(account.max_rate)
        self.parallel = max(2, min(self._cap(), math.ceil(account.max_rate
                                                          * SIZED_FOR_LATENCY_S) + 1))
        self.pacer = RatePacer(self.parallel, self._limit)

    def limit(self) -> RateLimit:
        """The rate limit, reading the account first when `preflight` did not."""
        with self._lock:
            if self._limit is not None:
                return self._limit
        try:
            account = self._read_account()
        except FailedError as exc:
            log.warning("SES: %s; sending at %g message/s", exc, FALLBACK_RATE)
            account = Account(FALLBACK_RATE, 0, 0, False, True, "HEALTHY")
        with self._lock:
            if self._limit is None:  # the pacer the send run holds stays
                self.account, self._limit = account, RateLimit(account.max_rate)
            return self._limit

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        self.renderer = MimeRenderer(mailing)
        self.sender = wire_address(mailing.config.sender.email)
        self.configuration_set = self._settings().configuration_set
        self.base_tags = [{"Name": "nl_send", "Value": tag_value(mailing.send_ref)},
                          {"Name": "nl_issue", "Value": tag_value(mailing.slug)}]
        if self.pacer is None:  # no preflight: the first hand-over reads the account
            self.pacer = _LazyPacer(self)

    # -- sending --------------------------------------------------------------------------
    def request(self, item: Item) -> dict[str, Any]:
        """The SendEmail parameters for one (wired) item; raises Unsendable."""
        self._check_address(item)
        raw = self.renderer.render(item.recipient, self.mailing.message_id(item.key))
        if len(raw) > MAX_RAW_BYTES:
            raise Unsendable(f"the message is {len(raw) // 1024 // 1024} MB; SES takes at "
                             "most 40 MB")
        params: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [item.recipient.email]},
            "Content": {"Raw": {"Data": raw}},
            "EmailTags": [*self.base_tags, {"Name": "nl_recipient", "Value": str(item.key)}],
        }
        if self.configuration_set:
            params["ConfigurationSetName"] = self.configuration_set
        return params

    @staticmethod
    def _check_address(item: Item) -> None:
        address = item.recipient.email
        if not address.isascii():
            raise Unsendable(f"SES does not accept {address[:60]!r}: it takes no address with "
                             "a non-ASCII local part (SMTPUTF8)")

    # -- the hooks ------------------------------------------------------------------------
    def build(self, items: Sequence[Item]) -> Request:
        """The items SES can take (an address it refuses is refused here); each message is
        rendered by `post` right before it leaves, not here: with a few hundred sending
        threads, a batch's messages rendered ahead held hundreds of megabytes."""
        ready, refused = [], {}
        for item in items:
            try:
                self._check_address(item)
                ready.append(item)
            except Unsendable as exc:
                refused[item.key] = str(exc)
        return Request(ready, refused=refused)

    def refusals(self, items: Sequence[Item]) -> dict[int, str]:
        """What SES would refuse (a dry run): each message rendered and checked."""
        refused = {}
        for item in items:
            try:
                self.request(item)
            except Unsendable as exc:
                refused[item.key] = str(exc)
        return refused

    def post(self, items: Sequence[Item], request: Request,
             tell: OutcomeSink | None = None) -> BatchResult:
        """Each recipient's outcome, one request each, in order, told as it comes (a message
        too large for SES is that recipient's `failed`); a throttle, an unreachable SES or a
        stop hands the rest back (`retry`)."""
        outcomes: list[Outcome] = []
        for index, item in enumerate(items):
            try:
                answer = self._send_one(item, self.request(item))
            except Unsendable as exc:
                answer = answers.Answer(Outcome("failed", error=str(exc)))
            outcomes.append(answer.outcome)
            go_on = tell is None or tell(index, answer.outcome)
            if answer.stop or answer.outcome.state == "retry" or not go_on:
                why = "not sent: " + (answer.stop or answer.outcome.error or "the send stopped")
                rest = [Outcome("retry", error=why)] * (len(items) - index - 1)
                return BatchResult(outcomes + rest, stop=answer.stop)
        return BatchResult(outcomes)

    def _send_one(self, item: Item, params: dict[str, Any]) -> answers.Answer:
        pacer = self.pacer
        if pacer is not None and not pacer.gate():
            return answers.Answer(Outcome("retry", error="not sent: the send stopped"))
        if self.stopped:  # another thread's answer stopped the send: nothing more leaves
            return answers.Answer(Outcome("retry", error=f"not sent: {self.stopped}"),
                                  stop=self.stopped)
        started = time.time()
        try:
            response = self.client.send_email(**params)
        except Exception as exc:  # noqa: BLE001 - classify() maps every one to an outcome
            answer = answers.classify(exc, sender=self.sender, recipient=item.recipient.email)
        else:
            answer = answers.accepted(response.get("MessageId"))
        if answer.throttled:
            self.limit().slow_down()
        if pacer is not None:
            pacer.record(started=started, latency=time.time() - started,
                         limited=answer.throttled, clean=answer.outcome.state == "accepted")
        answer = self._count_rejections(answer, item.recipient.email)
        if answer.stop:
            self.stopped = self.stopped or answer.stop
        return answer

    def _count_rejections(self, answer: answers.Answer, address: str) -> answers.Answer:
        """A run of messages rejected alike (not for their address) stops the send."""
        outcome = answer.outcome
        with self._lock:
            if outcome.state != "failed" or not outcome.error or "address" in outcome.error:
                if outcome.state == "accepted":
                    self._rejections = ("", 0)
                return answer
            reason = outcome.error.replace(address, "<recipient>")
            last, count = self._rejections
            count = count + 1 if reason == last else 1
            self._rejections = (reason, count)
        if count >= REJECTIONS_IN_A_ROW:
            return answers.Answer(outcome, stop=f"SES rejected {count} messages in a row alike "
                                  f"({reason}); fix the cause, then resume with `newsletter "
                                  "send ... --retry-failed`")
        return answer

    preview_kind = ("the API request", ".json")

    def preview(self, item: Item) -> str:
        try:
            params = self.request(on_the_wire(item))
        except Unsendable as exc:
            return f"(rejected: {exc})"
        raw = params["Content"]["Raw"]["Data"]  # bytes: base64 on the wire; shown as text
        params["Content"]["Raw"]["Data"] = raw.decode("utf-8", "replace")
        return json.dumps(params, indent=2, ensure_ascii=False)


    # -- the suppression list (declared) --------------------------------------------------
    @classmethod
    def suppression_source(cls, settings: Settings, config: PublicationConfig
                           ) -> SesSuppressions:
        from newsletter.providers.ses.suppressions import SesSuppressions

        return SesSuppressions(config.ses)

    @classmethod
    def releaser(cls, settings: Settings, config: PublicationConfig) -> SesSuppressions | None:
        """The account's list, when SES is in use: the default transport, or SES's events
        read (`ses.topic_arns`)."""
        if settings.transport != "ses" and not config.ses.topic_arns:
            return None
        return cls.suppression_source(settings, config)


class _LazyPacer(RatePacer):
    """A RatePacer whose rate is read from SES at the first hand-over (no preflight ran)."""

    def __init__(self, transport: SesTransport) -> None:
        super().__init__(transport.parallel, RateLimit(FALLBACK_RATE))
        self.transport = transport
        self.rate_limit = None  # type: ignore[assignment]

    def _ready(self) -> None:
        if self.rate_limit is None:
            self.rate_limit = self.transport.limit()

    def acquire(self) -> bool:
        self._ready()
        return super().acquire()

    def gate(self) -> bool:
        self._ready()
        return super().gate()
