"""Mail providers, the lowest mail layer: one module each (outbox, smtp, sendgrid/, ses/) behind
`Transport` (base.py); `make_transport()` picks one. They send a prepared `Mailing` (mailing.py)
and know nothing of campaigns or the send ledger."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from newsletter.core.errors import NewsletterError
from newsletter.core.settings import TRANSPORTS, Settings
from newsletter.providers.base import BatchResult, Outcome, Transport

if TYPE_CHECKING:
    from newsletter.compose.schema import PublicationConfig

__all__ = ["TRANSPORTS", "BatchResult", "Outcome", "Transport", "make_transport"]


def make_transport(name: str | None, settings: Settings,
                   config: PublicationConfig | None = None) -> Transport:
    """The transport called `name` (default: NEWSLETTER_TRANSPORT), configured from settings
    (and from the publication's provider settings, e.g. `ses:`, when `config` is given; else
    the transport reads them from the mailing it opens).

    NEWSLETTER_SENDGRID_BATCH caps recipients per SendGrid request (default and maximum 1000);
    NEWSLETTER_SENDGRID_IN_FLIGHT, when set, overrides newsletter.yaml's
    `sendgrid.max_in_flight` (the most requests in flight at once; default 8).
    """
    name = name or settings.transport
    if name == "outbox":
        from newsletter.providers.outbox import OutboxTransport

        return OutboxTransport(settings.outbox)
    if name == "smtp":
        from newsletter.providers.smtp import SmtpTransport

        return SmtpTransport(settings.smtp_url)
    if name == "sendgrid":
        from newsletter.providers.sendgrid.transport import SendGridTransport

        cap = os.environ.get("NEWSLETTER_SENDGRID_BATCH")
        in_flight = os.environ.get("NEWSLETTER_SENDGRID_IN_FLIGHT")
        return SendGridTransport(settings.sendgrid_api_key, settings.sendgrid_api_url,
                                 max_batch=int(cap) if cap else None,
                                 max_in_flight=max(1, int(in_flight)) if in_flight else None)
    if name == "ses":
        from newsletter.providers.ses.transport import SesTransport

        return SesTransport(config.ses if config is not None else None,
                            in_flight=settings.ses_in_flight)
    raise NewsletterError(f"unknown transport '{name}'; use one of {', '.join(TRANSPORTS)}")
