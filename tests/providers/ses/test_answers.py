"""What each SES answer means for the ledger (newsletter.providers.ses.answers), one case each
for the errors a real client raises; the end-to-end cases run against the stand-in in
test_send.py."""

from __future__ import annotations

import pytest
from botocore import exceptions as bx

from newsletter.providers.ses.answers import classify

SENDER, RECIPIENT = "newsletter@example.org", "reader@example.com"
URL = "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails"


def _client_error(code: str, message: str, status: int) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "SendEmail")


@pytest.mark.parametrize("code,message,status,state,stops,throttled", [
    ("TooManyRequestsException", "Maximum sending rate exceeded.", 429, "retry", False, True),
    ("Throttling", "Maximum sending rate exceeded.", 400, "retry", False, True),
    ("ThrottlingException", "Rate exceeded", 400, "retry", False, True),
    ("LimitExceededException", "Too many requests", 400, "retry", False, True),
    ("TooManyRequestsException", "Daily message quota exceeded.", 429, "retry", True, False),
    ("Throttling", "Daily message quota exceeded.", 400, "retry", True, False),
    ("MessageRejected", "Email address is not verified. The following identities failed the "
     f"check in region US-EAST-1: {RECIPIENT}", 400, "failed", False, False),
    ("MessageRejected", "Email address is not verified. The following identities failed the "
     f"check in region US-EAST-1: {SENDER}, {RECIPIENT}", 400, "retry", True, False),
    ("MessageRejected", "Message contains a virus", 400, "failed", False, False),
    ("BadRequestException", "Missing final '@domain'", 400, "failed", False, False),
    ("BadRequestException", f"Illegal address: {RECIPIENT}", 400, "failed", False, False),
    ("BadRequestException", "1 validation error detected: Value at 'content'", 400, "retry",
     True, False),
    ("MailFromDomainNotVerifiedException", "not verified", 400, "retry", True, False),
    ("AccountSuspendedException", "suspended", 400, "retry", True, False),
    ("SendingPausedException", "paused", 400, "retry", True, False),
    ("NotFoundException", "Configuration set <x> does not exist.", 404, "retry", True, False),
    ("UnrecognizedClientException", "The security token is invalid.", 403, "retry", True,
     False),
    ("InvalidSignatureException", "Signature expired", 403, "retry", True, False),
    ("ConflictException", "something else", 409, "retry", True, False),
    ("InternalFailure", "The request processing has failed.", 500, "retry", False, False),
    ("ServiceUnavailable", "Service is unavailable.", 503, "retry", False, False),
    ("502", "Bad Gateway", 502, "unknown", False, False),
    ("InternalFailure", "upstream", 504, "unknown", False, False),
    ("500", "Internal Server Error", 500, "unknown", False, False),
])
def test_ses_error_answers(code: str, message: str, status: int, state: str, stops: bool,
                           throttled: bool) -> None:
    answer = classify(_client_error(code, message, status), sender=SENDER, recipient=RECIPIENT)
    assert answer.outcome.state == state
    assert (answer.stop is not None) == stops
    assert answer.throttled == throttled
    assert message.split()[0] in (answer.outcome.error or "")  # SES's own words are kept


@pytest.mark.parametrize("exc,state,stops", [
    (bx.ReadTimeoutError(endpoint_url=URL), "unknown", False),  # the request was written
    (bx.ConnectionClosedError(endpoint_url=URL), "unknown", False),
    (bx.HTTPClientError(error="reset mid-request"), "unknown", False),
    (bx.EndpointConnectionError(endpoint_url=URL), "retry", False),  # never connected
    (bx.ConnectTimeoutError(endpoint_url=URL), "retry", False),
    (bx.SSLError(endpoint_url=URL, error="handshake"), "retry", False),
    (bx.NoCredentialsError(), "retry", True),
    (bx.NoRegionError(), "retry", True),
    (RuntimeError("a bug"), "unknown", True),  # not known to be harmless: stop, unknown
])
def test_transport_errors(exc: Exception, state: str, stops: bool) -> None:
    answer = classify(exc, sender=SENDER, recipient=RECIPIENT)
    assert answer.outcome.state == state and (answer.stop is not None) == stops
