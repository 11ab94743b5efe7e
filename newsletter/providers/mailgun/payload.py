"""Mailgun message requests: one form-encoded message, up to 1,000 recipients, each
personalised by recipient variables.

Mailgun's batch sending (`POST /v3/<domain>/messages`) takes one `to` per recipient and a
`recipient-variables` JSON object keyed by address; it then sends each recipient a message of
their own, with every `%recipient.KEY%` replaced by that recipient's value, in the subject, the
parts, the `h:` headers and the `v:` variables alike. Mailgun substitutes the same value
wherever a key appears, but ours must be HTML-escaped in the HTML part and verbatim in the text
part and the subject: so each of our `%%placeholders%%` becomes `%recipient.hN%` in the HTML
and `%recipient.tN%` elsewhere (as SendGrid's substitutions do in
newsletter.providers.sendgrid.payload).

The message carries the issue as its tag (`o:tag`), our send and ledger row as user variables
(`v:nl_send`, `v:nl_recipient` through a recipient variable) that Mailgun copies into every
webhook, and List-Unsubscribe / List-Unsubscribe-Post headers whose URL is a recipient variable.
Documented limits: 1,000 recipients a request; `o:`, `h:` and `v:` options 16 KB together; a
message of at most 25 MB.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import urlencode

import orjson

from newsletter.compose.package import list_id
from newsletter.core.errors import InputError, Problem
from newsletter.core.personalise import PLACEHOLDER
from newsletter.providers.http_api import address
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.mime import feedback_id

MAX_RECIPIENTS = 1000
MAX_OPTIONS_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
#: requests are sized to stay below this (the message limit, with room to spare)
TARGET_REQUEST_BYTES = 15 * 1024 * 1024
MAX_TAG = 128
MAX_ADDRESS_LENGTH = 320
SEND_KEY, RECIPIENT_KEY, ISSUE_KEY = "nl_send", "nl_recipient", "nl_issue"
UNSUBSCRIBE_KEY = "unsubscribe"


def variable(key: str) -> str:
    return f"%recipient.{key}%"


class MailgunPayload:
    """Builds request bodies for one mailing."""

    def __init__(self, mailing: Mailing, *, tracking: bool | None = None):
        self.mailing = mailing
        config = mailing.config
        if len(mailing.slug) > MAX_TAG or not mailing.slug.isascii():
            raise InputError(Problem("issue", None, "Mailgun tags are ASCII and at most "
                                     f"{MAX_TAG} characters; the issue slug is not"))
        self.keys: dict[tuple[str, str], str] = {}  # (part, placeholder) -> variable key

        def rewrite(part: str, content: str) -> str:
            def repl(match) -> str:
                key = self.keys.setdefault((part, match.group(0)), f"{part}{len(self.keys)}")
                return variable(key)

            return PLACEHOLDER.sub(repl, content)

        self.html = rewrite("h", mailing.html)
        self.text = rewrite("t", mailing.text)
        self.subject = rewrite("t", mailing.subject)
        self.fields: list[tuple[str, str]] = [
            ("from", address(config.sender.name, config.sender.email)),
            ("subject", self.subject), ("text", self.text), ("html", self.html),
            ("o:tag", mailing.slug),
            ("h:List-Unsubscribe", f"<{variable(UNSUBSCRIBE_KEY)}>"),
            ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("h:List-Id", list_id(config)),
            ("h:Feedback-ID", feedback_id(config, mailing.slug, mailing.send_ref)),
            ("v:" + ISSUE_KEY, mailing.slug), ("v:" + SEND_KEY, mailing.send_ref),
            ("v:" + RECIPIENT_KEY, variable(RECIPIENT_KEY)),
        ]
        if config.reply_to:
            self.fields.append(("h:Reply-To", config.reply_to))
        if tracking is not None:
            self.fields.append(("o:tracking", "yes" if tracking else "no"))
        options = sum(len(k) + len(v.encode()) for k, v in self.fields if k[:2] in ("o:", "h:",
                                                                                 "v:"))
        if options > MAX_OPTIONS_BYTES:
            raise InputError(Problem("newsletter.yaml", None, f"Mailgun's o:, h: and v: options "
                                     f"take {options} bytes; it allows {MAX_OPTIONS_BYTES}"))
        self.base = urlencode(self.fields).encode("ascii")
        if len(self.base) > TARGET_REQUEST_BYTES:
            raise InputError(Problem("issue", None, f"the email takes {len(self.base) // 1024} "
                                     "KB encoded; Mailgun takes at most 25 MB per message"))
        self.batch_size = MAX_RECIPIENTS

    def variables(self, item: Item) -> dict[str, str]:
        """One recipient's variables: each placeholder's value, escaped for its part."""
        recipient = item.recipient
        unsubscribe = self.mailing.unsubscribe(recipient.email)
        raw = self.mailing.values(recipient, unsubscribe)
        found = {UNSUBSCRIBE_KEY: unsubscribe, RECIPIENT_KEY: str(item.key)}
        for (part, placeholder), key in self.keys.items():
            value = raw.get(placeholder, "")
            found[key] = html.escape(value, quote=True) if part == "h" else value
        return found

    def body(self, items: Sequence[Item]) -> tuple[bytes, dict[int, str]]:
        """The form-encoded request for `items` and the recipients left out (key -> reason)."""
        if len(items) > MAX_RECIPIENTS:
            raise ValueError(f"{len(items)} recipients exceed Mailgun's {MAX_RECIPIENTS}")
        people: dict[str, dict[str, str]] = {}
        to: list[tuple[str, str]] = []
        refused: dict[int, str] = {}
        for item in items:
            email = item.recipient.email
            if len(email) > MAX_ADDRESS_LENGTH:
                refused[item.key] = "the address is longer than 320 characters"
                continue
            if email in people:
                raise ValueError(f"{email} twice in one request")
            people[email] = self.variables(item)
            to.append(("to", address(item.recipient.name, email)))
        form = urlencode([*to, ("recipient-variables", orjson.dumps(people).decode())])
        return self.base + b"&" + form.encode("ascii"), refused
