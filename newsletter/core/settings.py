"""Every setting the environment gives, declared once: the variable, its default and how its
text is read (secrets and machine-specific values only; a publication's settings are in
newsletter.yaml).

`Settings.from_env(root)` reads a publication's settings, `process()` the knobs of the running
process that no publication owns (retries, the ledger's patience, --debug). This is the only
module that reads or writes `os.environ` (tests/test_layers.py keeps it so), and README.md's
settings table lists exactly the variables declared here (a test compares them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from newsletter.core.errors import InputError, Problem

TRANSPORTS = ("outbox", "smtp", "sendgrid", "ses", "postmark", "mailgun")
EVENTS_KEEP_DAYS = 400
SIGNUPS_KEEP_DAYS = 7
#: the shortest NEWSLETTER_SECRET (and earlier secret) accepted for sending and serving
MIN_SECRET_LENGTH = 32
#: what NEWSLETTER_SECRET is for, as a missing one's message says it
SIGNS_LINKS = "signs unsubscribe and confirmation links"

T = TypeVar("T")
Reader = Callable[[str, str], Any]


def _text(name: str, value: str) -> str:
    return value


def _stripped(name: str, value: str) -> str:
    return value.strip()


def _url(name: str, value: str) -> str:
    return value.strip().rstrip("/")


def _listed(name: str, value: str) -> tuple[str, ...]:
    """A comma-separated list (blank items dropped)."""
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _count(name: str, value: str) -> int:
    """A positive whole number (ASCII digits)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise _bad(name, value, "a positive whole number")
    return int(text)


def _days(name: str, value: str) -> int:
    """A keep period: a positive whole number of days."""
    try:
        return _count(name, value)
    except InputError:
        raise _bad(name, value, "a positive number of days") from None


def _seconds(name: str, value: str) -> float:
    """A positive number of seconds (fractions allowed: tests shrink waits)."""
    try:
        seconds = float(value.strip())
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise _bad(name, value, "a positive number of seconds")
    return seconds


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str, value: str) -> bool:
    """1/true/yes/on or 0/false/no/off, in any case."""
    text = value.strip().lower()
    if text not in _TRUE + _FALSE:
        raise _bad(name, value, "1 or 0 (true/false, yes/no, on/off)")
    return text in _TRUE


def _path(name: str, value: str) -> Path:
    return Path(value.strip())


def _bad(name: str, value: str, wanted: str) -> InputError:
    return InputError(Problem(name, None, f"{value!r} is not {wanted}"))


def var(name: str, default: Any = None, read: Reader = _text) -> Any:
    """A setting read from the environment variable `name`: unset or blank gives `default`,
    any other text goes through `read(name, text)` (which raises InputError naming the
    variable for text it cannot take)."""
    return field(default=default, metadata={"env": name, "read": read})


def group(kind: type) -> Any:
    """A nested set of settings (one provider's, the process's), read the same way."""
    return field(default_factory=kind, metadata={"group": kind})


def load(kind: type[T], environ: Mapping[str, str], **given: Any) -> T:
    """`kind` with each declared variable read from `environ` (and `given` fields as they are)."""
    values = dict(given)
    for f in fields(kind):  # type: ignore[arg-type]
        if "group" in f.metadata:
            values[f.name] = load(f.metadata["group"], environ)
        elif "env" in f.metadata:
            text = environ.get(f.metadata["env"]) or ""
            if text.strip():
                values[f.name] = f.metadata["read"](f.metadata["env"], text)
    return kind(**values)


def variables(kind: type | None = None) -> dict[str, Any]:
    """Every environment variable declared (default: by Settings and what it holds), in
    declaration order, with its default (None when it has none)."""
    found: dict[str, Any] = {}
    for f in fields(kind or Settings):  # type: ignore[arg-type]
        if "group" in f.metadata:
            found.update(variables(f.metadata["group"]))
        elif "env" in f.metadata:
            found[f.metadata["env"]] = None if f.default is MISSING else f.default
    return found


@dataclass(frozen=True)
class ProcessSettings:
    """Knobs of the running process rather than of a publication; the defaults suit real
    providers, tests shrink them."""

    #: the first wait of a send's retries (seconds), doubling up to `retry_cap`
    retry_base: float = var("NEWSLETTER_RETRY_BASE", 1.0, _seconds)
    retry_cap: float = var("NEWSLETTER_RETRY_CAP", 60.0, _seconds)  # the longest single wait
    #: hand-overs of one batch before the send stops
    retry_attempts: int = var("NEWSLETTER_RETRY_ATTEMPTS", 6, _count)
    #: how long a ledger write waits out a busy database (another writer), in all
    ledger_patience: float = var("NEWSLETTER_LEDGER_PATIENCE", 300.0, _seconds)
    #: seconds between lease renewals of a running send (None: the ledger's HEARTBEAT_EVERY)
    heartbeat: float | None = var("NEWSLETTER_HEARTBEAT", None, _seconds)
    debug: bool = var("NEWSLETTER_DEBUG", False, _flag)  # tracebacks on the terminal
    skip_url_check: bool = var("NEWSLETTER_SKIP_URL_CHECK", False, _flag)  # send --skip-url-check
    #: set by `serve --workers N` for its worker processes: the publication each one loads
    serve_root: Path | None = var("NEWSLETTER_SERVE_ROOT", None, _path)


@dataclass(frozen=True)
class PostmarkEnv:
    """Postmark's secrets and test knobs."""

    server_token: str | None = var("POSTMARK_SERVER_TOKEN")
    #: tests point it at a local fake
    api_url: str = var("POSTMARK_API_URL", "https://api.postmarkapp.com", _url)
    webhook_user: str | None = var("POSTMARK_WEBHOOK_USER")  # basic auth of its webhooks
    webhook_password: str | None = var("POSTMARK_WEBHOOK_PASSWORD")
    batch: int | None = var("NEWSLETTER_POSTMARK_BATCH", None, _count)  # per request, <= 500
    in_flight: int | None = var("NEWSLETTER_POSTMARK_IN_FLIGHT", None, _count)


@dataclass(frozen=True)
class MailgunEnv:
    """Mailgun's secrets and test knobs."""

    api_key: str | None = var("MAILGUN_API_KEY")
    domain: str | None = var("MAILGUN_DOMAIN", None, _stripped)  # the sending domain
    api_url: str | None = var("MAILGUN_API_URL", None, _url)  # overrides `mailgun.region`
    webhook_signing_key: str | None = var("MAILGUN_WEBHOOK_SIGNING_KEY")
    batch: int | None = var("NEWSLETTER_MAILGUN_BATCH", None, _count)  # per request, <= 1000
    in_flight: int | None = var("NEWSLETTER_MAILGUN_IN_FLIGHT", None, _count)


@dataclass(frozen=True)
class SesEnv:
    """What newsletter itself reads of Amazon SES's environment (boto3 reads the credentials,
    AWS_ACCESS_KEY_ID or AWS_PROFILE or a role, on its own)."""

    #: the region (`ses.region` in newsletter.yaml overrides it; unset: boto3's own default)
    region: str | None = var("AWS_REGION", None, _stripped)
    #: SES's endpoint, which boto3 also reads (tests: a local stand-in); else AWS_ENDPOINT_URL
    endpoint: str | None = var("AWS_ENDPOINT_URL_SESV2", None, _stripped)
    any_endpoint: str | None = var("AWS_ENDPOINT_URL", None, _stripped)
    in_flight: int | None = var("NEWSLETTER_SES_IN_FLIGHT", None, _count)  # ses.max_in_flight

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint boto3 sends SES requests to, when the environment names one."""
        return self.endpoint or self.any_endpoint


@dataclass(frozen=True)
class Settings:
    """A publication's settings from the environment (README.md, "Settings from the
    environment", says what each is for)."""

    root: Path
    #: default: the SQLite file .newsletter/newsletter.db in the publication
    database_url: str = var("NEWSLETTER_DATABASE_URL")
    transport: str = var("NEWSLETTER_TRANSPORT", "outbox", _stripped)
    outbox: Path = var("NEWSLETTER_OUTBOX", Path("outbox"), _path)  # relative: to the root
    smtp_url: str | None = var("SMTP_URL")
    sendgrid_api_key: str | None = var("SENDGRID_API_KEY")
    sendgrid_api_url: str = var("SENDGRID_API_URL", "https://api.sendgrid.com", _url)
    webhook_public_key: str | None = var("SENDGRID_WEBHOOK_PUBLIC_KEY")
    sendgrid_batch: int | None = var("NEWSLETTER_SENDGRID_BATCH", None, _count)  # <= 1000
    #: overrides newsletter.yaml's `sendgrid.max_in_flight`
    sendgrid_in_flight: int | None = var("NEWSLETTER_SENDGRID_IN_FLIGHT", None, _count)
    secret: str | None = var("NEWSLETTER_SECRET")
    previous_secrets: tuple[str, ...] = var("NEWSLETTER_SECRET_PREVIOUS", (), _listed)
    events_keep_days: int = var("NEWSLETTER_EVENTS_KEEP_DAYS", EVENTS_KEEP_DAYS, _days)
    #: how long an unconfirmed sign-up request is kept
    signups_keep_days: int = var("NEWSLETTER_SIGNUPS_KEEP_DAYS", SIGNUPS_KEEP_DAYS, _days)
    bounces_password: str | None = var("NEWSLETTER_BOUNCES_PASSWORD")  # the bounce mailbox's
    #: `host[:port]` of the resolver DNS checks ask (default: the system's), or `off` to skip
    #: them (a machine without DNS; the test suite)
    dns_server: str | None = var("NEWSLETTER_DNS_SERVER", None, _stripped)
    postmark: PostmarkEnv = group(PostmarkEnv)
    mailgun: MailgunEnv = group(MailgunEnv)
    ses: SesEnv = group(SesEnv)
    process: ProcessSettings = group(ProcessSettings)

    @classmethod
    def from_env(cls, root: Path, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of the publication at `root` (`env`: default, the process's)."""
        read = load(cls, os.environ if env is None else env, root=root.resolve())
        changes: dict[str, Any] = {}
        if read.database_url is None:
            changes["database_url"] = f"sqlite:///{read.root / '.newsletter' / 'newsletter.db'}"
        if not read.outbox.is_absolute():
            changes["outbox"] = read.root / read.outbox
        return replace(read, **changes)

    @property
    def secrets(self) -> list[str]:
        """The current secret, then earlier ones still accepted (unchecked; `require_secret`
        checks them)."""
        return [s for s in (self.secret, *self.previous_secrets) if s]

    def require_secret(self, why: str = SIGNS_LINKS) -> list[str]:
        """[current, *previous]; InputError when NEWSLETTER_SECRET is not set (saying it `why`)
        or any secret is too short."""
        return require_secret([self.secret or "", *self.previous_secrets], why)


def require_secret(secrets: Sequence[str], why: str = SIGNS_LINKS) -> list[str]:
    """`secrets` (the current one first, then earlier ones still accepted) when the first is
    set and each is at least MIN_SECRET_LENGTH characters; InputError naming the variable
    otherwise (saying the secret `why`)."""
    if not secrets or not secrets[0]:
        raise InputError(Problem("NEWSLETTER_SECRET", None, f"NEWSLETTER_SECRET is not set; it "
                                 f"{why} (use a long random value, e.g. `python -c 'import "
                                 "secrets; print(secrets.token_urlsafe(32))'`, and keep it "
                                 "stable)"))
    for n, value in enumerate(secrets):
        if len(value) < MIN_SECRET_LENGTH:
            raise InputError(Problem(
                "NEWSLETTER_SECRET_PREVIOUS" if n else "NEWSLETTER_SECRET", None,
                f"a secret of {len(value)} characters is too short; use at least "
                f"{MIN_SECRET_LENGTH} random characters"))
    return list(secrets)


def process(environ: Mapping[str, str] | None = None) -> ProcessSettings:
    """The process's knobs, read now (so a test's or a parent's change is seen)."""
    return load(ProcessSettings, os.environ if environ is None else environ)


def ses(environ: Mapping[str, str] | None = None) -> SesEnv:
    """SES's settings, read now, for code that has no publication's Settings at hand."""
    return load(SesEnv, os.environ if environ is None else environ)


def hand_to_workers(root: Path) -> None:
    """Tell the worker processes `serve --workers N` starts (they inherit this environment)
    which publication to load: ProcessSettings.serve_root."""
    os.environ["NEWSLETTER_SERVE_ROOT"] = str(root)
