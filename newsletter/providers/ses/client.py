"""The boto3 SES v2 client, set up for exactly-once sending.

botocore retries a request on its own (throttling, 5xx, a connection closed before the
answer) unless told otherwise; a retried SendEmail whose first answer was lost mails the
person twice, so every retry of a send is the send run's, decided from the ledger: the sending
client makes one attempt per call (`total_max_attempts: 1`). Calls that are safe to repeat (the
suppression list) ask for more. Credentials, the region and the endpoint come from boto3's own
settings (AWS_ACCESS_KEY_ID / AWS_PROFILE / an instance role, AWS_REGION,
AWS_ENDPOINT_URL_SESV2); `ses.region` in newsletter.yaml overrides the region.
"""

from __future__ import annotations

import os
from typing import Any

from newsletter.core.errors import NewsletterError

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0


def region_of(region: str | None) -> str:
    """The region to use: `region` first, then AWS_REGION, then boto3's own (AWS_DEFAULT_REGION,
    the profile's configuration)."""
    found = region or os.environ.get("AWS_REGION")
    if not found:
        import boto3

        found = boto3.session.Session().region_name
    if not found:
        raise NewsletterError("no AWS region for SES: set AWS_REGION (or `ses: {region: ...}` "
                              "in newsletter.yaml)")
    return found


def make_client(region: str | None, *, pool: int = 10, read_timeout: float = READ_TIMEOUT_S,
                attempts: int = 1) -> Any:
    """An SES v2 client that makes `attempts` attempts per call (one: sending is retried by
    the send run alone), with `pool` connections kept."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise NewsletterError("the ses transport needs boto3: pip install 'newsletter[ses]'"
                              ) from None

    config = Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                    connect_timeout=CONNECT_TIMEOUT_S, read_timeout=read_timeout,
                    max_pool_connections=max(1, pool), tcp_keepalive=True)
    return boto3.session.Session().client("sesv2", region_name=region_of(region), config=config)


def error_parts(exc: Exception) -> tuple[str, str, int]:
    """(error code, message, HTTP status) of a botocore ClientError."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
    message = " ".join(str(error.get("Message") or "").split())[:300]
    return str(error.get("Code") or ""), message, int(status)
