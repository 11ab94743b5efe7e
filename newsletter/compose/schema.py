"""Typed schemas for newsletter.yaml, issue.yaml and piece front matter (their values are
checked by compose.fields; compose.validation reports every problem with its line).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import (
    Field,
    PrivateAttr,
    field_validator,
)

from newsletter.compose.fields import (
    Strict,
    check_address,
    check_language,
    check_one_line,
    check_url,
    parse_duration,
)
from newsletter.compose.provider_config import (
    MailgunConfig,
    PostmarkConfig,
    SendGridConfig,
    SesConfig,
)
from newsletter.core.reputation import Thresholds, parse_percent
from newsletter.core.settings import TRANSPORTS


class Sender(Strict):
    name: str
    email: str

    _name = field_validator("name")(classmethod(lambda cls, v: check_one_line(v)))
    _email = field_validator("email")(classmethod(lambda cls, v: check_address(v)))


class ExpertWords(Strict):
    """An expert's name and role in another language."""

    name: str | None = None
    role: str | None = None


class Expert(Strict):
    name: str
    role: str = ""
    twitter: str | None = None
    translations: dict[str, ExpertWords] = Field(default_factory=dict)  # lang -> name, role

    def words(self, lang: str) -> tuple[str, str]:
        """(name, role) in `lang` when given, else as written."""
        other = self.translations.get(lang) or self.translations.get(lang.split("-")[0])
        if other is None:
            return self.name, self.role
        return other.name or self.name, other.role if other.role is not None else self.role

    @field_validator("twitter")
    @classmethod
    def _handle(cls, value: str | None) -> str | None:
        if value is None:
            return None
        handle = value.strip().removeprefix("@")
        if not handle.replace("_", "").isalnum() or len(handle) > 15:
            raise ValueError(f"{value!r} is not a Twitter handle (letters, digits, _; at most 15)")
        return handle


class S3Target(Strict):
    """An S3-compatible bucket the archive is published to (credentials from the environment)."""

    bucket: str
    prefix: str = ""  # key prefix that archive_url maps to, e.g. "archive/"
    endpoint_url: str | None = None  # for S3-compatible services; AWS when unset
    region: str | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        return value + "/" if value else ""


class PublishConfig(Strict):
    """Where `newsletter publish` puts web copies: a local folder (default) or an S3 bucket."""

    folder: str = "published"  # relative to the publication; what archive_url serves
    s3: S3Target | None = None


class TrackingConfig(Strict):
    """`tracking:` in newsletter.yaml: our click tracking and the human-or-machine thresholds
    (newsletter.events.classify explains each rule)."""

    clicks: bool = False
    scanner_delay_s: int = Field(default=10, ge=0)  # a click this soon after delivery: scanner
    burst_window_s: int = Field(default=2, ge=0)  # clicks on this many links within ...
    burst_links: int = Field(default=3, ge=2)  # ... this window: a scanner


class ChromeWords(Strict):
    """`translations: {LANG: {...}}`: the publication's own words in an edition's language."""

    name: str | None = None
    publisher: str | None = None
    footer: str | None = None
    address: str | None = None
    from_name: str | None = None

    _from_name = field_validator("from_name")(
        classmethod(lambda cls, v: None if v is None else check_one_line(v)))


#: the chrome `translations:` can give per language, as newsletter.yaml names each
CHROME_KEYS = ("name", "publisher", "footer", "address", "from_name")


class ApprovalConfig(Strict):
    """`approval:` in newsletter.yaml: sign-off before `send`."""

    required: bool = False
    approvers: int = Field(1, ge=1, le=20)  # distinct people who must approve the same content


class FeedConfig(Strict):
    """`feed:` in newsletter.yaml: the defaults of `newsletter new SLUG --from-feed`."""

    url: str | None = None  # the site's RSS or Atom feed
    words: int = Field(150, ge=20, le=2000)  # each piece's opening, at most this many words
    pick: int | None = Field(None, ge=1)  # at most this many entries
    language: str | None = None  # the issue's language when the feed does not say
    days: int = Field(7, ge=1)  # how far back to look when no send has completed yet
    timeout: float = Field(10.0, gt=0, le=120)  # seconds for each request
    link_text: str | None = None  # default: "Read the full commentary" in the issue's language

    _url = field_validator("url")(classmethod(lambda cls, v: v and check_url(v)))
    _language = field_validator("language")(classmethod(lambda cls, v: check_language(v)))


class BouncesConfig(Strict):
    """`bounces:`: the mailbox SMTP bounces and complaints come back to (docs/deliverability.md);
    its password is NEWSLETTER_BOUNCES_PASSWORD, never this file."""

    imap_url: str  # imaps://user@host[:port]/INBOX (imap:// only to this machine)
    return_path: str  # bounces@news.example.org: VERP makes bounces+<token>@news.example.org
    processed_folder: str = "Processed"  # where handled messages go (created when missing)
    soft_bounce_limit: int = Field(3, ge=1)  # this many soft bounces within ...
    soft_bounce_days: int = Field(30, ge=1)  # ... this many days retire an address
    every: str = "5m"  # how often `newsletter serve` reads the mailbox

    _return_path = field_validator("return_path")(classmethod(lambda cls, v: check_address(v)))
    _every = field_validator("every")(classmethod(lambda cls, v: parse_duration(v) and v))

    @field_validator("imap_url")
    @classmethod
    def _imap_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        port = parts.netloc.rpartition(":")[2] if "]" not in parts.netloc else ""
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username \
                or (":" in parts.netloc.rpartition("@")[2] and not port.isdigit()):
            raise ValueError(f"{value!r} is not a URL like imaps://user@host/INBOX")
        if parts.password is not None:
            raise ValueError("must not hold a password: put it in the environment variable "
                             "NEWSLETTER_BOUNCES_PASSWORD, not in newsletter.yaml")
        return value

    @field_validator("processed_folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        if not value.isascii() or not value.isprintable() or value.upper() == "INBOX" \
                or any(c in value for c in '"\\*%'):
            raise ValueError(f"{value!r} is not a plain ASCII folder name other than INBOX")
        return value

    @property
    def domain(self) -> str:
        """The return path's domain: the envelope (MAIL FROM) domain of SMTP sends."""
        return self.return_path.rsplit("@", 1)[1].lower()


class ReputationConfig(Strict):
    """`reputation:`: the guard that pauses a send whose own hard bounces or complaints pass
    these rates (docs/sending.md#the-reputation-guard). Rates are written as percentages."""

    min_sample: int = Field(Thresholds.min_sample, ge=1)  # messages handed over first
    bounce_pause: float = Thresholds.bounce_pause  # `5%`: hard bounces per message
    complaint_pause: float = Thresholds.complaint_pause  # `0.1%`: complaints per message

    _rates = field_validator("bounce_pause", "complaint_pause", mode="before")(
        classmethod(lambda cls, v: parse_percent(v)))

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.min_sample, self.bounce_pause, self.complaint_pause)


class WelcomeConfig(Strict):
    """`welcome:`: the message confirmed sign-ups get once (docs/welcome.md)."""

    issue: str = "_welcome"  # the folder under issues/; its editions are its languages
    latest: Literal["none", "link", "whole"] = "none"  # the latest sent issue: a link, or all
    transport: str | None = None  # default: NEWSLETTER_TRANSPORT
    within_days: int = Field(7, ge=1, le=365)  # older confirmations are not welcomed
    every: str = "30s"  # how often `serve` looks for sign-ups confirmed elsewhere

    _every = field_validator("every")(classmethod(lambda cls, v: parse_duration(v) and v))

    @field_validator("issue")
    @classmethod
    def _issue(cls, value: str) -> str:
        if not value.startswith("_") or "/" in value or value.strip("_") == "":
            raise ValueError(f"{value!r} must be a folder name starting with _ (such folders "
                             "are messages, not issues: the archive leaves them out)")
        return value

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: str | None) -> str | None:
        if value is not None and value not in TRANSPORTS:
            raise ValueError(f"{value!r} is not a transport; use one of {', '.join(TRANSPORTS)}")
        return value


class SubjectTestsConfig(Strict):
    """`subject_tests:`: how `send --test-subjects` decides (docs/sending.md)."""

    level: float = Field(0.05, gt=0, lt=0.5)  # significance level of the two-proportion test
    finish_in_serve: bool = False  # `serve` decides due tests and sends the rest
    every: str = "1m"  # how often `serve` looks for a due decision

    _every = field_validator("every")(classmethod(lambda cls, v: parse_duration(v) and v))


class PublicationConfig(Strict):
    """newsletter.yaml."""

    name: str
    publisher: str
    sender: Sender = Field(alias="from")
    reply_to: str | None = None
    address: str
    archive_url: str
    public_url: str
    footer: str = ""
    test_recipients: list[str] = Field(default_factory=list)
    experts: dict[str, Expert]
    language: str = "en"
    template: str = "default"
    _language = field_validator("language")(classmethod(lambda cls, v: check_language(v)))
    sendgrid: SendGridConfig = Field(default_factory=SendGridConfig)
    postmark: PostmarkConfig = Field(default_factory=PostmarkConfig)
    mailgun: MailgunConfig = Field(default_factory=MailgunConfig)
    ses: SesConfig = Field(default_factory=SesConfig)  # Amazon SES (docs/providers/ses.md)
    topics: dict[str, str] = Field(default_factory=dict)  # sign-up form: tag -> label
    publish: PublishConfig = Field(default_factory=PublishConfig)
    strings: dict[str, dict[str, str]] = Field(default_factory=dict)  # lang -> key -> words
    digits: Literal["latin", "native"] = "latin"  # dates in the language's own digits?
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    translations: dict[str, ChromeWords] = Field(default_factory=dict)  # lang -> chrome words
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    feed: FeedConfig = Field(default_factory=FeedConfig)  # `new --from-feed` (docs/drafting.md)
    bounces: BouncesConfig | None = None  # the bounce mailbox (docs/deliverability.md)
    reputation: ReputationConfig = Field(default_factory=ReputationConfig)  # the send guard
    welcome: WelcomeConfig | None = None  # the welcome message of confirmed sign-ups
    subject_tests: SubjectTestsConfig = Field(default_factory=SubjectTestsConfig)
    _own: PublicationConfig | None = PrivateAttr(default=None)  # set on an edition's copy

    _reply = field_validator("reply_to")(
        classmethod(lambda cls, v: None if v is None else check_address(v))
    )
    _tests = field_validator("test_recipients")(
        classmethod(lambda cls, v: [check_address(a) for a in v])
    )

    @field_validator("topics", mode="before")
    @classmethod
    def _topics(cls, value: object) -> object:
        if isinstance(value, list):  # a plain list of tags is its own labels
            return {str(tag): str(tag) for tag in value}
        return value

    @field_validator("topics")
    @classmethod
    def _topic_tags(cls, value: dict[str, str]) -> dict[str, str]:
        return {tag.strip().lower(): label for tag, label in value.items()}

    @field_validator("archive_url", "public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value).rstrip("/") + "/"

    def chrome_words(self, lang: str) -> ChromeWords | None:
        """`translations:` for `lang` (or its base language: ar for ar-EG), if given."""
        from newsletter.compose.i18n import base_language  # Babel: loaded when needed

        return self.translations.get(lang) or self.translations.get(base_language(lang))

    def edition_config(self, lang: str) -> PublicationConfig:
        """These settings as an edition in `lang` shows them: name, publisher, footer, address
        and the From name from `translations:` where given (the rest as written)."""
        words = self.chrome_words(lang)
        if words is None:
            return self
        given = {key: getattr(words, key) for key in CHROME_KEYS if getattr(words, key)}
        if not given:
            return self
        sender = self.sender
        if "from_name" in given:
            sender = sender.model_copy(update={"name": given.pop("from_name")})
        edition = self.model_copy(update={**given, "sender": sender})
        edition._own = self.own
        return edition

    @property
    def own(self) -> PublicationConfig:
        """The settings as written (not an edition's translated copy): what names the list."""
        return self._own or self

    def untranslated_chrome(self, lang: str) -> list[str]:
        """The chrome keys shown in English (the publication's language) in a `lang` edition:
        those set here but missing from `translations:` for `lang`. Empty for the publication's
        own language."""
        from newsletter.compose.i18n import base_language

        if base_language(lang) == base_language(self.language):
            return []
        words = self.chrome_words(lang)
        own = {"name": self.name, "publisher": self.publisher, "footer": self.footer,
               "address": self.address, "from_name": self.sender.name}
        return [key for key in CHROME_KEYS
                if own[key].strip() and not (words and getattr(words, key))]


class Hero(Strict):
    image: str
    alt: str
    credit: str = ""


class IssueManifest(Strict):
    """issues/<slug>/issue.yaml."""

    subject: str
    preheader: str = ""  # hidden preview text: inboxes show it after the subject
    intro: str = ""  # an optional visible opening paragraph (Markdown)
    date: dt.date

    _one_line = field_validator("subject", "preheader")(
        classmethod(lambda cls, v: check_one_line(v)))
    hero: Hero | None = None
    pieces: list[str] = Field(min_length=1)
    language: str | None = None  # default: the publication's
    dir: Literal["ltr", "rtl"] | None = None  # default: from the language
    translation_of: str | None = None  # slug of the edition this one translates
    translations: list[str] = Field(default_factory=list)  # slugs of this one's translations

    _language = field_validator("language")(classmethod(lambda cls, v: check_language(v)))

    @field_validator("translation_of", mode="before")
    @classmethod
    def _slug(cls, value: object) -> object:
        return value.isoformat() if isinstance(value, dt.date) else value  # 2026-11-24 unquoted

    @field_validator("translations", mode="before")
    @classmethod
    def _slugs(cls, value: object) -> object:
        if isinstance(value, list):
            return [v.isoformat() if isinstance(v, dt.date) else v for v in value]
        return value


class PieceMeta(Strict):
    """A piece's front matter."""

    title: str
    expert: str
    lang: str | None = None  # default: the issue's language
    dir: Literal["ltr", "rtl"] | None = None  # default: from the language

    _lang = field_validator("lang")(classmethod(lambda cls, v: check_language(v)))
