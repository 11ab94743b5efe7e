"""Settings from the environment (secrets and machine-specific values only)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TRANSPORTS = ("outbox", "smtp", "sendgrid", "ses", "postmark", "mailgun")
EVENTS_KEEP_DAYS = 400
SIGNUPS_KEEP_DAYS = 7


@dataclass(frozen=True)
class PostmarkEnv:
    """Postmark's secrets and test knobs (docs/providers/postmark.md)."""

    server_token: str | None = None  # POSTMARK_SERVER_TOKEN
    api_url: str = "https://api.postmarkapp.com"  # POSTMARK_API_URL (tests: a local fake)
    webhook_user: str | None = None  # POSTMARK_WEBHOOK_USER: basic auth of its webhooks
    webhook_password: str | None = None  # POSTMARK_WEBHOOK_PASSWORD
    batch: int | None = None  # NEWSLETTER_POSTMARK_BATCH: messages per request (at most 500)
    in_flight: int | None = None  # NEWSLETTER_POSTMARK_IN_FLIGHT: overrides max_in_flight

    @classmethod
    def from_env(cls, env: dict[str, str]) -> PostmarkEnv:
        return cls(server_token=env.get("POSTMARK_SERVER_TOKEN") or None,
                   api_url=(env.get("POSTMARK_API_URL") or cls.api_url).rstrip("/"),
                   webhook_user=env.get("POSTMARK_WEBHOOK_USER") or None,
                   webhook_password=env.get("POSTMARK_WEBHOOK_PASSWORD") or None,
                   batch=_count(env, "NEWSLETTER_POSTMARK_BATCH"),
                   in_flight=_count(env, "NEWSLETTER_POSTMARK_IN_FLIGHT"))


@dataclass(frozen=True)
class MailgunEnv:
    """Mailgun's secrets and test knobs (docs/providers/mailgun.md)."""

    api_key: str | None = None  # MAILGUN_API_KEY
    domain: str | None = None  # MAILGUN_DOMAIN: the sending domain
    api_url: str | None = None  # MAILGUN_API_URL: overrides `mailgun.region` (tests: a fake)
    webhook_signing_key: str | None = None  # MAILGUN_WEBHOOK_SIGNING_KEY
    batch: int | None = None  # NEWSLETTER_MAILGUN_BATCH: recipients per request (at most 1000)
    in_flight: int | None = None  # NEWSLETTER_MAILGUN_IN_FLIGHT: overrides max_in_flight

    @classmethod
    def from_env(cls, env: dict[str, str]) -> MailgunEnv:
        url = env.get("MAILGUN_API_URL") or None
        return cls(api_key=env.get("MAILGUN_API_KEY") or None,
                   domain=(env.get("MAILGUN_DOMAIN") or "").strip() or None,
                   api_url=url.rstrip("/") if url else None,
                   webhook_signing_key=env.get("MAILGUN_WEBHOOK_SIGNING_KEY") or None,
                   batch=_count(env, "NEWSLETTER_MAILGUN_BATCH"),
                   in_flight=_count(env, "NEWSLETTER_MAILGUN_IN_FLIGHT"))


@dataclass(frozen=True)
class Tuning:
    """How a send retries, waits for a busy ledger and renews its lease, from the environment
    (None: the dispatch module's default)."""

    retry_base: float | None = None  # NEWSLETTER_RETRY_BASE: seconds of the first back-off
    retry_cap: float | None = None  # NEWSLETTER_RETRY_CAP: the longest back-off
    retry_attempts: int | None = None  # NEWSLETTER_RETRY_ATTEMPTS: tries of one batch
    ledger_patience: float | None = None  # NEWSLETTER_LEDGER_PATIENCE: seconds one write waits
    heartbeat: float | None = None  # NEWSLETTER_HEARTBEAT: seconds between lease renewals

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Tuning:
        env = dict(os.environ if env is None else env)

        def number(name: str) -> float | None:
            value = env.get(name)
            return float(value) if value else None

        attempts = env.get("NEWSLETTER_RETRY_ATTEMPTS")
        return cls(retry_base=number("NEWSLETTER_RETRY_BASE"),
                   retry_cap=number("NEWSLETTER_RETRY_CAP"),
                   retry_attempts=max(1, int(attempts)) if attempts else None,
                   ledger_patience=number("NEWSLETTER_LEDGER_PATIENCE"),
                   heartbeat=number("NEWSLETTER_HEARTBEAT"))


@dataclass(frozen=True)
class Settings:
    """Environment settings; see DESIGN.md "Settings from the environment"."""

    root: Path
    database_url: str
    transport: str
    outbox: Path
    smtp_url: str | None
    sendgrid_api_key: str | None
    sendgrid_api_url: str
    secret: str | None
    webhook_public_key: str | None
    previous_secrets: tuple[str, ...] = ()  # NEWSLETTER_SECRET_PREVIOUS, comma-separated
    events_keep_days: int = EVENTS_KEEP_DAYS  # NEWSLETTER_EVENTS_KEEP_DAYS
    signups_keep_days: int = SIGNUPS_KEEP_DAYS  # NEWSLETTER_SIGNUPS_KEEP_DAYS (unconfirmed)
    bounces_password: str | None = None  # NEWSLETTER_BOUNCES_PASSWORD: the bounce mailbox's
    #: NEWSLETTER_DNS_SERVER: `host[:port]` of the resolver DNS checks ask (default: the
    #: system's), or `off` to skip them (a machine without DNS; the test suite)
    dns_server: str | None = None
    postmark: PostmarkEnv = field(default_factory=PostmarkEnv)
    mailgun: MailgunEnv = field(default_factory=MailgunEnv)
    #: SES: the most SendEmail requests in flight (NEWSLETTER_SES_IN_FLIGHT; overrides
    #: `ses.max_in_flight`). AWS credentials, region and endpoint are boto3's own variables.
    ses_in_flight: int | None = None

    @classmethod
    def from_env(cls, root: Path, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        root = root.resolve()
        default_db = f"sqlite:///{root / '.newsletter' / 'newsletter.db'}"
        db = env.get("NEWSLETTER_DATABASE_URL") or default_db
        outbox = Path(env.get("NEWSLETTER_OUTBOX") or "outbox")
        return cls(
            root=root,
            database_url=db,
            transport=env.get("NEWSLETTER_TRANSPORT") or "outbox",
            outbox=outbox if outbox.is_absolute() else root / outbox,
            smtp_url=env.get("SMTP_URL") or None,
            sendgrid_api_key=env.get("SENDGRID_API_KEY") or None,
            sendgrid_api_url=(env.get("SENDGRID_API_URL") or "https://api.sendgrid.com").rstrip(
                "/"
            ),
            secret=env.get("NEWSLETTER_SECRET") or None,
            webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
            previous_secrets=tuple(p.strip() for p in
                                   (env.get("NEWSLETTER_SECRET_PREVIOUS") or "").split(",")
                                   if p.strip()),
            events_keep_days=_days(env, "NEWSLETTER_EVENTS_KEEP_DAYS", EVENTS_KEEP_DAYS),
            signups_keep_days=_days(env, "NEWSLETTER_SIGNUPS_KEEP_DAYS", SIGNUPS_KEEP_DAYS),
            bounces_password=env.get("NEWSLETTER_BOUNCES_PASSWORD") or None,
            dns_server=(env.get("NEWSLETTER_DNS_SERVER") or "").strip() or None,
            postmark=PostmarkEnv.from_env(env),
            mailgun=MailgunEnv.from_env(env),
            ses_in_flight=_count(env, "NEWSLETTER_SES_IN_FLIGHT"),
        )

    @property
    def secrets(self) -> list[str]:
        """The current secret, then earlier ones still accepted (unchecked; see
        newsletter.tokens.signing_secrets)."""
        return [s for s in (self.secret, *self.previous_secrets) if s]


def _days(env: dict[str, str], name: str, default: int) -> int:
    """A keep period from the environment: a positive whole number of days (ASCII digits)."""
    value = env.get(name)
    if not value or not value.strip():
        return default
    text = value.strip()
    days = int(text) if text.isascii() and text.isdigit() else 0
    if days < 1:
        from newsletter.core.errors import InputError, Problem

        raise InputError(Problem(name, None, f"{value!r} is not a positive number of days"))
    return days


def _count(env: dict[str, str], name: str) -> int | None:
    """A positive whole number from the environment (None when unset)."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        from newsletter.core.errors import InputError, Problem

        raise InputError(Problem(name, None, f"{value!r} is not a positive whole number"))
    return int(value)
