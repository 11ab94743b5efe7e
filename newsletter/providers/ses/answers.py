"""What an SES SendEmail answer (or its absence) means for the ledger, by SendGrid's rules.

- accepted: SES answered with a MessageId (stored as the provider id);
- the recipient's own failure: `MessageRejected` (SES refused this message: a recipient the
  sandbox has not verified, content SES refuses) unless it names the sender, and a
  `BadRequestException` about the recipient's address;
- throttled, sent again after a back-off at a lower rate: `TooManyRequestsException`,
  `Throttling`, `ThrottlingException`, `LimitExceededException`, any 429 ("Maximum sending rate
  exceeded"), unless SES says the daily quota is used up, which stops the send;
- the whole send stops (nothing more could be sent): a suspended or paused account, a sender
  domain or identity SES does not accept, a configuration set it does not know, refused
  credentials, a request SES calls malformed, any other 4xx;
- not taken, tried again: SES's own 5xx (its JSON error names the failure), and a connection
  that could not be made (nothing was sent);
- unknown: the request was written and no answer came (a read timeout, a connection closed
  before the answer), or a gateway answered 502/504 or a 5xx without SES's error body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.providers.base import Outcome
from newsletter.providers.ses.client import error_parts

THROTTLE_CODES = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                            "LimitExceededException"})
AUTH_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
    "SignatureDoesNotMatch", "AccessDeniedException", "AccessDenied", "ExpiredTokenException",
    "ExpiredToken", "MissingAuthenticationTokenException", "IncompleteSignatureException",
    "RequestExpired"})
ACCOUNT_STOPS = {
    "AccountSuspendedException": "SES has suspended the account's sending",
    "SendingPausedException": "SES has paused sending for the account or configuration set",
    "MailFromDomainNotVerifiedException": "SES does not accept the sender's MAIL FROM domain",
    "NotFoundException": "SES does not know a resource the send names (the configuration set?)",
}
#: SES's words for a malformed recipient address (BadRequestException)
_ADDRESS_WORDS = re.compile(r"missing final '@domain'|local address|\bdomain (contains|ends|"
                            r"starts)|\b(illegal|invalid) (email )?address", re.I)


@dataclass(frozen=True)
class Answer:
    """One message's outcome, and what it means for the rest of the send."""

    outcome: Outcome
    stop: str | None = None  # the whole send stops (the outcome is then `retry`: not sent)
    throttled: bool = False  # SES asked us to slow down


def accepted(message_id: str | None) -> Answer:
    return Answer(Outcome("accepted", provider_id=message_id))


def _mentions(message: str, address: str) -> bool:
    return bool(address) and address.lower() in message.lower()


def classify(exc: Exception, *, sender: str, recipient: str) -> Answer:
    """The Answer for an exception SendEmail raised."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        return _client_error(exc, sender, recipient)
    if isinstance(exc, bx.ReadTimeoutError | bx.ConnectionClosedError):
        return Answer(Outcome("unknown", error=f"no answer from SES: {exc}"))
    if isinstance(exc, bx.ConnectionError):  # connect timeout, refused, TLS, proxy: not sent
        return Answer(Outcome("retry", error=f"cannot reach SES: {exc}"))
    if isinstance(exc, bx.HTTPClientError):
        return Answer(Outcome("unknown", error=f"no answer from SES: {exc}"))
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.NoRegionError
                  | bx.ParamValidationError):
        reason = f"SES: {exc}"
        return Answer(Outcome("retry", error=reason), stop=reason)
    reason = f"SES call failed: {type(exc).__name__}: {exc}"
    return Answer(Outcome("unknown", error=reason), stop=reason)


def _client_error(exc: Exception, sender: str, recipient: str) -> Answer:
    code, message, status = error_parts(exc)
    words = f"{code}: {message}" if message else code
    if code in THROTTLE_CODES or status == 429:
        if "daily" in message.lower() and "quota" in message.lower():
            reason = (f"SES's daily sending quota is used up ({words}); run the same "
                      "`newsletter send` again once SES's 24-hour window allows more")
            return Answer(Outcome("retry", error=reason), stop=reason)
        return Answer(Outcome("retry", error=f"SES throttled the send ({words})"), throttled=True)
    if code in ACCOUNT_STOPS:
        reason = f"{ACCOUNT_STOPS[code]} ({words})"
        return Answer(Outcome("retry", error=reason), stop=reason)
    if code in AUTH_CODES:
        reason = (f"SES refused the AWS credentials ({words}); check them and that they may "
                  "call ses:SendEmail")
        return Answer(Outcome("retry", error=reason), stop=reason)
    if code == "MessageRejected":
        if _mentions(message, sender):
            reason = f"SES refused the sender {sender} ({words})"
            return Answer(Outcome("retry", error=reason), stop=reason)
        return Answer(Outcome("failed", error=f"SES rejected the message ({words})"))
    if code == "BadRequestException" and (_mentions(message, recipient)
                                          or _ADDRESS_WORDS.search(message)):
        return Answer(Outcome("failed", error=f"SES refused the address ({words})"))
    if status >= 500:
        if status in (502, 504) or code.isdigit() or not code:
            return Answer(Outcome("unknown", error=f"a gateway answered {status} for SES; the "
                                                   f"message may have been taken ({words})"))
        return Answer(Outcome("retry", error=f"SES answered {status} ({words})"))
    reason = f"SES rejected the request ({status or 'no status'} {words})"
    return Answer(Outcome("retry", error=reason), stop=reason)
