"""Mail providers, the lowest mail layer: one module each (outbox, smtp, sendgrid/, ses/,
postmark/, mailgun/) filling the provider contract (`Transport`, base.py); `make_transport()`
makes one, `capabilities()` says what one declares it can do beyond sending. They send a
prepared `Mailing` (mailing.py) and know nothing of campaigns or the send ledger."""

from __future__ import annotations

from newsletter.compose.provider_config import MailgunConfig, PostmarkConfig
from newsletter.compose.schema import PublicationConfig
from newsletter.core.errors import NewsletterError
from newsletter.core.settings import TRANSPORTS, Settings
from newsletter.providers.base import BatchResult, Capabilities, Outcome, Transport

__all__ = ["TRANSPORTS", "BatchResult", "Capabilities", "Outcome", "Transport", "capabilities",
           "make_transport", "transport_class"]

#: transport name -> (module, class): imported only when asked for
_CLASSES = {
    "outbox": ("newsletter.providers.outbox", "OutboxTransport"),
    "smtp": ("newsletter.providers.smtp", "SmtpTransport"),
    "sendgrid": ("newsletter.providers.sendgrid.transport", "SendGridTransport"),
    "postmark": ("newsletter.providers.postmark.transport", "PostmarkTransport"),
    "mailgun": ("newsletter.providers.mailgun.transport", "MailgunTransport"),
    "ses": ("newsletter.providers.ses.transport", "SesTransport"),
}


def transport_class(name: str) -> type[Transport]:
    """The class of the transport called `name` (NewsletterError for an unknown name)."""
    import importlib

    found = _CLASSES.get(name)
    if found is None:
        raise NewsletterError(f"unknown transport '{name}'; use one of {', '.join(TRANSPORTS)}")
    module, cls = found
    return getattr(importlib.import_module(module), cls)


def capabilities(name: str) -> Capabilities:
    """What the transport called `name` declares it can do beyond sending (nothing for a name
    this version does not know, such as a send's transport from another version)."""
    if name not in _CLASSES:
        return Capabilities()
    return transport_class(name).capabilities


def make_transport(name: str | None, settings: Settings,
                   config: PublicationConfig | None = None) -> Transport:
    """The transport called `name` (default: NEWSLETTER_TRANSPORT), configured from settings
    (and the publication's `config`, where Mailgun's region and the `ses:` settings are: US and
    the defaults when none is given; the SES transport then reads them from the mailing it
    opens).

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

        return SendGridTransport(settings.sendgrid_api_key, settings.sendgrid_api_url,
                                 max_batch=settings.sendgrid_batch,
                                 max_in_flight=settings.sendgrid_in_flight)
    if name == "postmark":
        from newsletter.providers.postmark.transport import PostmarkTransport

        postmark = settings.postmark
        return PostmarkTransport(postmark.server_token, postmark.api_url,
                                 config.postmark if config else PostmarkConfig(),
                                 max_batch=postmark.batch, max_in_flight=postmark.in_flight)
    if name == "mailgun":
        from newsletter.providers.mailgun.api import api_url
        from newsletter.providers.mailgun.transport import MailgunTransport

        mailgun = settings.mailgun
        chosen = config.mailgun if config else MailgunConfig()
        return MailgunTransport(mailgun.api_key, mailgun.domain,
                                api_url(chosen.region, mailgun.api_url), chosen,
                                max_batch=mailgun.batch, max_in_flight=mailgun.in_flight)
    if name == "ses":
        from newsletter.providers.ses.transport import SesTransport

        return SesTransport(config.ses if config is not None else None,
                            in_flight=settings.ses.in_flight)
    raise NewsletterError(f"unknown transport '{name}'; use one of {', '.join(TRANSPORTS)}")
