"""Postmark batch request bodies: a JSON array of whole messages, one per recipient.

Postmark's batch endpoint (`POST /email/batch`) takes up to 500 messages and 50 MB per call,
each message at most 10 MB; it has no substitution of its own outside its stored templates,
so each entry carries its recipient's subject, HTML and text, personalised here (values
HTML-escaped in the HTML part, verbatim in the text part and the subject). Each entry names
the publication's Message Stream (a Broadcasts stream, `postmark.message_stream`), the issue as
its Tag, our send and ledger row in its Metadata (Postmark copies both into every webhook), and
its own List-Unsubscribe and List-Unsubscribe-Post headers.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import orjson

from newsletter.compose.package import list_id
from newsletter.core.errors import InputError, Problem
from newsletter.core.personalise import PLACEHOLDER
from newsletter.providers.http_api import address
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.mime import feedback_id

MAX_MESSAGES = 500
MAX_REQUEST_BYTES = 50 * 1024 * 1024
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
#: requests are sized to stay below this (Postmark's 50 MB, with room to spare)
TARGET_REQUEST_BYTES = 20 * 1024 * 1024
MAX_TAG = 1000
MAX_ADDRESS_LENGTH = 320
#: Metadata keys Postmark returns in webhooks (our send and ledger row)
SEND_KEY, RECIPIENT_KEY, ISSUE_KEY = "nl_send", "nl_recipient", "nl_issue"


class Filler:
    """One part with placeholders, split once, filled per recipient."""

    def __init__(self, content: str, *, as_html: bool):
        self.as_html = as_html
        self.runs: list[str] = []
        self.holes: list[str] = []
        last = 0
        for match in PLACEHOLDER.finditer(content):
            self.runs.append(content[last : match.start()])
            self.holes.append(match.group(0))
            last = match.end()
        self.runs.append(content[last:])

    def fill(self, values: dict[str, str]) -> str:
        if not self.holes:
            return self.runs[0]
        escape = html.escape if self.as_html else None
        out = [self.runs[0]]
        for hole, run in zip(self.holes, self.runs[1:], strict=True):
            value = values.get(hole, "")
            out.append(escape(value, quote=True) if escape else value)
            out.append(run)
        return "".join(out)


class PostmarkPayload:
    """Builds batch bodies for one mailing."""

    def __init__(self, mailing: Mailing, stream: str, *, track_opens: bool | None = None,
                 track_links: str | None = None):
        self.mailing = mailing
        config = mailing.config
        if len(mailing.slug) > MAX_TAG:
            raise InputError(Problem("issue", None, f"the issue slug is longer than Postmark's "
                                     f"{MAX_TAG}-character Tag"))
        self.subject = Filler(mailing.subject, as_html=False)
        self.html = Filler(mailing.html, as_html=True)
        self.text = Filler(mailing.text, as_html=False)
        self.base: dict = {"From": address(config.sender.name, config.sender.email),
                           "MessageStream": stream, "Tag": mailing.slug}
        if config.reply_to:
            self.base["ReplyTo"] = config.reply_to
        if track_opens is not None:
            self.base["TrackOpens"] = track_opens
        if track_links is not None:
            self.base["TrackLinks"] = track_links
        self.list_id = list_id(config)
        self.feedback_id = feedback_id(config, mailing.slug, mailing.send_ref)
        each = len(orjson.dumps(self.base)) + 3 * len(mailing.html.encode()) // 2 \
            + len(mailing.text.encode()) + 2048
        self.batch_size = max(1, min(MAX_MESSAGES, TARGET_REQUEST_BYTES // each))

    def message(self, item: Item) -> dict:
        """One recipient's whole message."""
        recipient = item.recipient
        unsubscribe = self.mailing.unsubscribe(recipient.email)
        values = self.mailing.values(recipient, unsubscribe)
        return {
            **self.base,
            "To": address(recipient.name, recipient.email),
            "Subject": self.subject.fill(values),
            "HtmlBody": self.html.fill(values),
            "TextBody": self.text.fill(values),
            "Headers": [
                {"Name": "List-Unsubscribe", "Value": f"<{unsubscribe}>"},
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                {"Name": "List-Id", "Value": self.list_id},
                {"Name": "Feedback-ID", "Value": self.feedback_id},
            ],
            "Metadata": {ISSUE_KEY: self.mailing.slug, SEND_KEY: self.mailing.send_ref,
                         RECIPIENT_KEY: str(item.key)},
        }

    def body(self, items: Sequence[Item]) -> tuple[bytes, dict[int, str]]:
        """The request body for `items` and the recipients left out (key -> reason)."""
        if len(items) > MAX_MESSAGES:
            raise ValueError(f"{len(items)} messages exceed Postmark's {MAX_MESSAGES} a batch")
        messages, refused = [], {}
        for item in items:
            if len(item.recipient.email) > MAX_ADDRESS_LENGTH:
                refused[item.key] = "the address is longer than 320 characters"
                continue
            message = orjson.dumps(self.message(item))
            if len(message) > MAX_MESSAGE_BYTES:
                refused[item.key] = (f"the personalised message takes {len(message):,} bytes; "
                                     f"Postmark takes at most {MAX_MESSAGE_BYTES:,}")
                continue
            messages.append(message)
        return b"[" + b",".join(messages) + b"]", refused
