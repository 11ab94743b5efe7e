"""Typed schemas for newsletter.yaml, issue.yaml and piece front matter.

Validation never stops at the first problem: `validate()` turns every pydantic error into a
Problem with file and line, and every unknown key into a warning (the MkDocs way).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from newsletter.core.errors import Problem
from newsletter.core.reputation import Thresholds, parse_percent
from newsletter.core.settings import TRANSPORTS
from newsletter.core.yamlsrc import YamlDoc


def check_address(value: str) -> str:
    """Normalise an email address (syntax only, no DNS)."""
    from email_validator import EmailNotValidError, validate_email  # only when validating

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None


def split_addresses(raw: str) -> list[str]:
    """Addresses typed in one field: separated by commas, semicolons or spaces."""
    return [part for part in re.split(r"[\s,;]+", raw) if part]


def _check_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{value!r} must be an absolute http(s) URL")
    return value


def check_one_line(value: str) -> str:
    """Refuse control characters (line breaks, tabs, ...): a header value is one line."""
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        name = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}.get(
            bad, f"the control character U+{ord(bad):04X}")
        raise ValueError(f"must be one line of plain text, but it holds {name}")
    return value


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> dt.timedelta:
    """`15m`, `1h`, `90s`, `1h30m` as a timedelta."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 15m, 1h or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


class Strict(BaseModel):
    """Base: extra keys are kept so they can be reported as warnings, not errors."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, populate_by_name=True,
                              defer_build=True)  # built on first use (cached settings: never)


class Sender(Strict):
    name: str
    email: str

    _name = field_validator("name")(classmethod(lambda cls, v: check_one_line(v)))
    _email = field_validator("email")(classmethod(lambda cls, v: check_address(v)))


def check_language(value: str | None) -> str | None:
    """A BCP 47-style language tag: en, ar, pt-BR, zh-Hant (not a language name)."""
    if not value:
        return value  # empty: `newsletter check` reports it (accessibility.lang)
    parts = value.replace("_", "-").split("-")
    if not (2 <= len(parts[0]) <= 3 and parts[0].isalpha() and parts[0].isascii()) or not all(
        1 <= len(p) <= 8 and p.isalnum() and p.isascii() for p in parts[1:]
    ):
        raise ValueError(f"{value!r} is not a language tag such as en, ar or pt-BR")
    return value


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


class SendGridConfig(Strict):
    asm_group_id: int | None = None
    categories: list[str] = Field(default_factory=list)
    undo_window: str | None = None  # e.g. 15m: the default for `send --undo-window`
    max_in_flight: int = Field(8, ge=1, le=64)  # the adaptive limit's ceiling (requests at once)

    @field_validator("undo_window", mode="before")
    @classmethod
    def _window(cls, value: object) -> object:
        if value is not None:
            parse_duration(str(value))
            return str(value)
        return value


AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
SNS_TOPIC_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:sns:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):\d{12}:"
                           r"[A-Za-z0-9_-]{1,256}(\.fifo)?")
SES_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SesConfig(Strict):
    """`ses:` in newsletter.yaml: Amazon SES's non-secret settings (credentials, and the region
    unless `region` is given, come from the standard AWS environment)."""

    region: str | None = None  # overrides AWS_REGION for sending and the suppression list
    configuration_set: str | None = None  # SES publishes this set's events (to SNS)
    topic_arns: list[str] = Field(default_factory=list)  # SNS topics `serve` accepts
    max_in_flight: int = Field(50, ge=1, le=500)  # SendEmail requests at once, at most

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not AWS_REGION.fullmatch(value):
            raise ValueError(f"{value!r} is not an AWS region such as us-east-1 or eu-west-1")
        return value

    @field_validator("configuration_set")
    @classmethod
    def _set_name(cls, value: str | None) -> str | None:
        if value is not None and not SES_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a configuration set name (up to 64 letters, "
                             "digits, '-' and '_')")
        return value

    @field_validator("topic_arns", mode="before")
    @classmethod
    def _one_topic(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("topic_arns")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not SNS_TOPIC_ARN.fullmatch(arn):
                raise ValueError(f"{arn!r} is not an SNS topic ARN such as "
                                 "arn:aws:sns:us-east-1:123456789012:newsletter-events")
        return value


class PostmarkConfig(Strict):
    """`postmark:` in newsletter.yaml (the server token comes from the environment)."""

    message_stream: str = "broadcast"  # a Broadcasts stream: Postmark's rule for newsletters
    max_in_flight: int = Field(4, ge=1, le=64)  # batch requests at once (the adaptive ceiling)
    track_opens: bool | None = None  # None: the message stream's own setting
    track_links: Literal["None", "HtmlAndText", "HtmlOnly", "TextOnly"] | None = None

    @field_validator("message_stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not value or len(value) > 100 or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError(f"{value!r} is not a message stream ID (letters, digits, - and _)")
        return value


class MailgunConfig(Strict):
    """`mailgun:` in newsletter.yaml (the API key and sending domain come from the
    environment)."""

    region: Literal["us", "eu"] = "us"  # api.mailgun.net or api.eu.mailgun.net
    max_in_flight: int = Field(4, ge=1, le=64)  # batch requests at once (the adaptive ceiling)
    tracking: bool | None = None  # o:tracking; None: the domain's own setting

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


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

    _url = field_validator("url")(classmethod(lambda cls, v: v and _check_url(v)))
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
        return _check_url(value).rstrip("/") + "/"

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


M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "list_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "date_type": "a date like 2026-11-24",
    "date_parsing": "a date like 2026-11-24",
    "date_from_datetime_parsing": "a date like 2026-11-24",
    "bool_type": "true or false",
}


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "document"
    kind = err["type"]
    if kind == "missing":
        return f"missing required key '{loc}'"
    if kind in _TYPE_WORDS:
        got = type(err.get("input")).__name__
        got = {"NoneType": "nothing", "str": "text", "dict": "a mapping", "list": "a list"}.get(
            got, got
        )
        return f"'{loc}' should be {_TYPE_WORDS[kind]}, not {got}"
    if kind == "too_short":
        return f"'{loc}' must not be empty"
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{loc}': {msg}"


def _model_of(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model'|'dict'|'list', Model) when a field holds models, else None."""
    from typing import get_args, get_origin

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and args and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return "dict", args[1]
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "list", args[0]
    for arg in args:  # Optional[Model]
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return "model", arg
    return None


def unknown_keys(model_cls: type[BaseModel], data: Any, loc: tuple = ()) -> list[tuple]:
    """Key paths in raw `data` that `model_cls` does not define (checked before validation)."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model_cls.model_fields.items()}
    found: list[tuple] = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            found.append((*loc, key))
            continue
        inner = _model_of(field.annotation)
        if inner is None:
            continue
        kind, sub = inner
        if kind == "model":
            found += unknown_keys(sub, value, (*loc, key))
        elif kind == "dict" and isinstance(value, dict):
            for k, v in value.items():
                found += unknown_keys(sub, v, (*loc, key, k))
        elif kind == "list" and isinstance(value, list):
            for i, v in enumerate(value):
                found += unknown_keys(sub, v, (*loc, key, i))
    return found


def validate(model_cls: type[M], doc: YamlDoc) -> tuple[M | None, list[Problem]]:
    """Validate a YAML document against a schema, collecting every problem with its line."""
    data = doc.data
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        return None, [
            Problem(doc.path, doc.line_of(()), f"expected key: value lines, but the file is {what}")
        ]
    problems = [
        Problem(
            doc.path,
            doc.line_of(loc),
            f"unknown key '{'.'.join(map(str, loc))}' is ignored; check its spelling",
            severity="warning",
        )
        for loc in unknown_keys(model_cls, data)
    ]
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        problems += [
            Problem(doc.path, doc.line_of(tuple(e["loc"])), _describe(e)) for e in exc.errors()
        ]
        return None, sorted(problems, key=lambda p: p.line or 0)
    return model, problems
