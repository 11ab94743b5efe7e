"""newsletter.yaml's section for each mail provider (`sendgrid:`, `ses:`, `postmark:`,
`mailgun:`): their non-secret settings; the secrets come from the environment
(newsletter.core.settings)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from newsletter.compose.fields import Strict, parse_duration


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
