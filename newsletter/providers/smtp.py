"""The SMTP transport: one message per recipient over one reused connection.

`SMTP_URL` is `smtp://user:pass@host:port` (STARTTLS whenever the server offers it; with a
user name it is required) or `smtps://...` (TLS from the first byte, port 465 by default).
A dropped connection is reopened; a message whose DATA went out but whose reply never came
is `unknown` (the server may have queued it), never silently sent again. A refusal concerns
its recipient alone: 4xx on RCPT or DATA is `deferred` (tried again later in the run), 5xx is
`failed`. IDN domains go out as A-labels; a non-ASCII local part uses SMTPUTF8 when the server
offers it and is otherwise that recipient's failure. Only a connection that cannot be opened,
a refused login or a refused sender stop the send. With a bounce mailbox (`bounces:`), each
message's envelope sender (MAIL FROM) is its own VERP address (providers.bounces.verp), so a
later bounce names its send and ledger row.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.providers.base import (
    BatchResult,
    Capabilities,
    Outcome,
    OutcomeSink,
    Request,
    Transport,
)
from newsletter.providers.bounces.verp import envelope_sender
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.mime import MimeRenderer

_LEADING_DOT = re.compile(rb"(?m)^\.")
CRLF = b"\r\n"


class _Sent(Exception):
    """The message body left; what follows is unknown."""


class _Stop(Exception):
    """The server refused something every message would meet (sender, message, login)."""


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(message.split())}".strip()


class SmtpTransport(Transport):
    name = "smtp"
    label = "SMTP"
    #: bounces and complaints come back by mail, to the bounce mailbox (VERP envelope senders)
    capabilities = Capabilities(reports_by_mail=frozenset({"bounce", "complaint"}))
    batch_size = 10
    reports_each_outcome = True  # each message's 250 (or refusal) is recorded as it comes

    def __init__(self, url: str | None, *, timeout: float = 30.0):
        if not url:
            raise NewsletterError("SMTP_URL is not set; set it to "
                                  "smtp://user:password@host:587 (or smtps://... for TLS)")
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise NewsletterError("SMTP_URL must look like "
                                  "smtp://user:password@host:587 or smtps://host:465")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        try:
            self.port = parts.port or (465 if self.tls else 587)
        except ValueError:
            raise NewsletterError("SMTP_URL has a bad port") from None
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        self.timeout = timeout
        self.where = f"{parts.scheme}://{self.host}:{self.port}"
        self._conn: smtplib.SMTP | None = None

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        self.renderer = MimeRenderer(mailing)

    # -- connection -----------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self.tls:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if not self.tls:
                if conn.has_extn("starttls"):
                    conn.starttls(context=context)
                    conn.ehlo()
                elif self.user:
                    raise FailedError(f"{self.where} does not offer STARTTLS; refusing to send "
                                      "the password unencrypted (use smtps:// if it speaks TLS)")
            if self.user:
                conn.login(self.user, self.password)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def preflight(self) -> None:
        """Connect, negotiate TLS and log in now, so a bad server stops us before any send."""
        try:
            self._connection()
        except smtplib.SMTPAuthenticationError as exc:
            raise FailedError(f"SMTP server {self.where} refused the login: "
                              f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise FailedError(f"cannot reach SMTP server {self.where}: "
                              f"{reason or type(exc).__name__}") from None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()

    # -- sending --------------------------------------------------------------------------
    def _transaction(self, sender: str, item: Item) -> Outcome:
        """MAIL, RCPT, DATA for one message (its address already on the wire); raises _Sent
        or connection errors."""
        address = item.recipient.email
        conn = self._connection()
        options: list[str] = []
        if not address.isascii():
            if not conn.has_extn("smtputf8"):
                return Outcome("failed", error=f"{self.where} does not offer SMTPUTF8, which "
                                               "an address with a non-ASCII local part needs")
            options = ["SMTPUTF8"]
        try:
            data = self.renderer.render(item.recipient, self.mailing.message_id(item.key))
        except Exception as exc:  # noqa: BLE001 - this recipient's data, this one's outcome
            return Outcome("failed", error=f"cannot make this recipient's message: "
                                           f"{type(exc).__name__}: {exc}")
        try:
            code, text = conn.mail(sender, options)
            if code != 250:
                return self._refused("MAIL FROM", code, text, conn)
            code, text = conn.rcpt(address)
        finally:
            conn.command_encoding = "ascii"
        if code not in (250, 251):
            return self._refused("RCPT TO", code, text, conn)
        code, text = conn.docmd("DATA")
        if code != 354:
            return self._refused("DATA", code, text, conn)
        body = _LEADING_DOT.sub(b"..", data)
        if not body.endswith(CRLF):
            body += CRLF
        conn.send(body + b"." + CRLF)
        try:
            code, text = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            raise _Sent(str(exc) or type(exc).__name__) from exc
        if code == 250:
            return Outcome("accepted", provider_id=_reply(code, text)[:200])
        return self._refused("end of DATA", code, text, conn)

    def _refused(self, stage: str, code: int, text: bytes, conn: smtplib.SMTP) -> Outcome:
        """A refusal as this recipient's outcome: 4xx deferred (tried again later), 5xx
        failed; 421 (the server is closing) hands the message back for a new connection."""
        reason = f"{stage}: {_reply(code, text)}"
        if code == 421:
            self._drop()
            return Outcome("retry", error=reason)
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()
        if 400 <= code < 500:
            return Outcome("deferred", error=reason)
        if stage == "MAIL FROM":
            # The sender refused for good concerns every message: the send stops.
            raise _Stop(f"SMTP server {self.where} refused {reason}")
        return Outcome("failed", error=reason)

    def post(self, items: Sequence[Item], request: Request,
             tell: OutcomeSink | None = None) -> BatchResult:
        """Each recipient's outcome, told to `tell` as soon as the server answered; a
        connection that cannot be (re)opened hands the rest back (`retry`), a refused login
        or sender stops the send."""
        outcomes: list[Outcome] = []
        for index, item in enumerate(items):
            outcome = None
            for _ in range(2):  # a dropped connection is reopened once, right away
                try:
                    outcome = self._transaction(envelope_sender(self.mailing, item.key), item)
                    break
                except _Sent as exc:
                    self._drop()
                    outcome = Outcome("unknown", error=f"connection lost after the message "
                                                       f"was sent: {exc}")
                    break
                except smtplib.SMTPAuthenticationError as exc:
                    self._drop()
                    reason = (f"SMTP server {self.where} refused the login: "
                              f"{_reply(exc.smtp_code, exc.smtp_error)}")
                    rest = [Outcome("retry", error=reason)] * (len(items) - len(outcomes))
                    return BatchResult(outcomes + rest, stop=reason)
                except _Stop as exc:
                    rest = [Outcome("retry", error=str(exc))] * (len(items) - len(outcomes))
                    return BatchResult(outcomes + rest, stop=str(exc))
                except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                    self._drop()
                    outcome = Outcome("retry", error=f"{self.where}: {exc or type(exc).__name__}")
                except Exception as exc:  # noqa: BLE001 - e.g. smtplib refusing to encode
                    self._reset()
                    outcome = Outcome("failed", error=f"cannot send to this address: "
                                                      f"{type(exc).__name__}: {exc}")
                    break
            assert outcome is not None
            go_on = tell is None or tell(index, outcome)
            if outcome.state == "retry":
                # The connection is gone: hand the rest back and let the send run back off.
                rest = [outcome] * (len(items) - len(outcomes))
                return BatchResult(outcomes + rest)
            outcomes.append(outcome)
            if not go_on:
                rest = [Outcome("retry", error="not sent: the send stopped")]
                return BatchResult(outcomes + rest * (len(items) - len(outcomes)))
        return BatchResult(outcomes)

    def _reset(self) -> None:
        """Abandon a half-made transaction (RSET), or the connection if that fails too."""
        if self._conn is None:
            return
        try:
            self._conn.command_encoding = "ascii"
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def preview(self, item: Item) -> str:
        data = self.renderer.render(item.recipient, self.mailing.message_id(item.key))
        return data.decode("utf-8", "replace")
