"""SendGrid v3 Mail Send request bodies: one content, up to 1000 personalizations.

Everything here follows SendGrid's documented limits and rules (see docs/sending.md, "SendGrid
limits", for the sources):

- at most 1000 personalizations and 1000 recipients (to+cc+bcc) per request, and no address
  twice in one request;
- at most 10,000 substitutions per request, 100 per personalization, and 10,000 bytes of
  substitutions per personalization;
- custom_args: string values, at most 10,000 bytes per personalization after merging with the
  message-level ones;
- headers: string values, ASCII keys without spaces, none of the reserved keys;
- categories: at most 10, unique, ASCII, 255 characters each;
- to.name must not contain ';' or ','; addresses at most 320 characters;
- content: text/plain first, then text/html; the whole request well under 30 MB;
- send_at: a Unix timestamp at most 72 hours ahead; batch_id a string;
- asm.group_id an integer; asm.groups_to_display at most 25 integers.

SendGrid substitutes the same value in every content block, but our values must be
HTML-escaped in the HTML part and verbatim in the text part. So each placeholder gets two
keys: `%%html:KEY%%` in the HTML block (escaped value) and `%%text:KEY%%` in the text block
and subject (raw value).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from newsletter.audience.model import clean_name
from newsletter.compose.package import list_id
from newsletter.core.errors import InputError, NewsletterError, Problem
from newsletter.core.personalise import PLACEHOLDER
from newsletter.providers.mailing import ASM_UNSUBSCRIBE_TAG, Item, Mailing
from newsletter.providers.mime import feedback_id

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTIONS_PER_REQUEST = 10_000
MAX_SUBSTITUTIONS_PER_PERSONALIZATION = 100
MAX_SUBSTITUTION_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
MAX_ADDRESS_LENGTH = 320
MAX_GROUPS_TO_DISPLAY = 25
MAX_SCHEDULE_AHEAD = dt.timedelta(hours=72)
MAX_EMAIL_BYTES = 30 * 1024 * 1024
#: requests stay below this, leaving SendGrid's 30 MB limit a wide margin
TARGET_REQUEST_BYTES = 20 * 1024 * 1024
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in ("x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
              "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC")
)


class RecipientRejected(ValueError):
    """One recipient cannot be put in a request (e.g. substitutions over the size limit)."""


@dataclass(frozen=True)
class _Key:
    placeholder: str  # %%first_name|there%% as the template wrote it
    html_key: str | None
    text_key: str | None


def _key(kind: str, placeholder: str) -> str:
    return f"%%{kind}:{placeholder[2:-2]}%%"


def check_categories(categories: Sequence[str]) -> list[Problem]:
    """Problems with the publication's `sendgrid.categories`, per SendGrid's rules."""
    problems = []
    where = "newsletter.yaml"
    if len(categories) > MAX_CATEGORIES:
        problems.append(Problem(where, None, f"sendgrid.categories has {len(categories)} "
                                f"entries; SendGrid allows at most {MAX_CATEGORIES}"))
    if len(set(categories)) != len(categories):
        problems.append(Problem(where, None, "sendgrid.categories must not repeat a category"))
    for category in categories:
        if not category.isascii():
            problems.append(Problem(where, None, f"sendgrid category {category!r} must be ASCII"))
        if len(category) > MAX_CATEGORY_LENGTH:
            problems.append(Problem(where, None, f"sendgrid category {category[:20]!r}... is "
                                    f"longer than {MAX_CATEGORY_LENGTH} characters"))
    return problems


def sendgrid_name(name: str) -> str:
    """A display name SendGrid accepts in `to.name`: a clean name (audience.model.clean_name)
    without ';' or ','."""
    return clean_name(name.replace(";", " ").replace(",", " "))


class PayloadBuilder:
    """Builds request bodies for one mailing."""

    def __init__(self, mailing: Mailing):
        self.mailing = mailing
        problems = check_categories(mailing.categories)
        if not mailing.config.sender.name.isascii():
            problems.append(Problem("newsletter.yaml", None, "SendGrid does not accept "
                                    "non-ASCII characters in the 'from' name"))
        if problems:
            raise InputError(problems)
        asm = mailing.asm_group_id is not None
        keys: dict[str, _Key] = {}

        def rewrite(kind: str, content: str) -> str:
            def repl(match) -> str:
                found = match.group(0)
                if asm and match.group(1) == "unsubscribe_url":
                    return ASM_UNSUBSCRIBE_TAG  # SendGrid fills in the group's link
                old = keys.get(found, _Key(found, None, None))
                key = _key(kind, found)
                keys[found] = (_Key(found, key, old.text_key) if kind == "html"
                               else _Key(found, old.html_key, key))
                return key

            return PLACEHOLDER.sub(repl, content)

        self.html = rewrite("html", mailing.html)
        self.text = rewrite("text", mailing.text)
        self.subject = rewrite("text", mailing.subject)
        self.keys = list(keys.values())
        self.plan = [(k.placeholder, k.html_key, k.text_key) for k in self.keys]
        self.key_bytes = sum(len((k.html_key or "").encode()) + len((k.text_key or "").encode())
                             for k in self.keys)
        per_person = sum((k.html_key is not None) + (k.text_key is not None) for k in self.keys)
        self.substitutions_each = per_person
        self.base = self._base()
        base_bytes = len(json.dumps(self.base).encode("utf-8"))
        self.batch_size = max(1, min(MAX_PERSONALIZATIONS, MAX_RECIPIENTS,
                                     MAX_SUBSTITUTIONS_PER_REQUEST // max(1, per_person)))
        if base_bytes > MAX_EMAIL_BYTES // 2:
            raise NewsletterError(f"the email is {base_bytes // 1024} KB; SendGrid takes at most "
                                  f"{MAX_EMAIL_BYTES // 1024 // 1024} MB per request")

    def _base(self) -> dict:
        m = self.mailing
        config = m.config
        body: dict = {
            "from": {"email": config.sender.email, "name": config.sender.name},
            "subject": self.subject,
            "content": [
                {"type": "text/plain", "value": self.text},
                {"type": "text/html", "value": self.html},
            ],
            "headers": {"List-Id": list_id(config),
                        "Feedback-ID": feedback_id(config, m.slug, m.send_ref)},
            "custom_args": {"nl_issue": m.slug, "nl_send": m.send_ref},
        }
        if config.reply_to:
            body["reply_to"] = {"email": config.reply_to}
        if m.categories:
            body["categories"] = list(m.categories)
        if m.asm_group_id is not None:
            body["asm"] = {"group_id": int(m.asm_group_id)}
        if m.send_at is not None:
            body["send_at"] = int(m.send_at.timestamp())
        if m.batch_id:
            body["batch_id"] = str(m.batch_id)
        return body

    def personalization(self, item: Item) -> dict:
        """One recipient's personalization; raises RecipientRejected when over a limit."""
        recipient = item.recipient
        email = recipient.email
        if len(email) > MAX_ADDRESS_LENGTH or "@" not in email:
            raise RecipientRejected(f"address {email[:40]!r} is not one SendGrid accepts")
        if self.substitutions_each > MAX_SUBSTITUTIONS_PER_PERSONALIZATION:
            raise RecipientRejected("the template uses more than 100 personal values")
        unsubscribe = self.mailing.unsubscribe(email)
        raw = self.mailing.values(recipient, unsubscribe)
        substitutions: dict[str, str] = {}
        escape = html.escape
        size = self.key_bytes
        for placeholder, html_key, text_key in self.plan:
            value = raw.get(placeholder, "")
            if html_key:
                escaped = substitutions[html_key] = escape(value)
                size += 4 * len(escaped)
            if text_key:
                substitutions[text_key] = value
                size += 4 * len(value)
        # A UTF-8 character takes at most 4 bytes: measure exactly only when it could matter.
        if size > MAX_SUBSTITUTION_BYTES:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())
            if size > MAX_SUBSTITUTION_BYTES:
                raise RecipientRejected(f"personal values take {size} bytes; SendGrid allows "
                                        f"{MAX_SUBSTITUTION_BYTES} per recipient")
        name = recipient.name
        if ";" in name or "," in name or not name.isprintable() or "  " in name \
                or name != name.strip():
            name = sendgrid_name(name)
        person: dict = {
            "to": [{"email": email, "name": name} if name else {"email": email}],
            "headers": {
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "custom_args": {"nl_recipient": str(item.key)},
        }
        if substitutions:
            person["substitutions"] = substitutions
        return person

    def body(self, items: Sequence[Item]) -> tuple[dict, dict[int, str]]:
        """The request for `items` and the recipients left out (key -> reason)."""
        if len(items) > self.batch_size:
            raise ValueError(f"{len(items)} items exceed the batch size {self.batch_size}")
        people, rejected, seen = [], {}, set()
        for item in items:
            address = item.recipient.email.lower()
            if address in seen:
                raise ValueError(f"{address} twice in one request")
            seen.add(address)
            try:
                people.append(self.personalization(item))
            except RecipientRejected as exc:
                rejected[item.key] = str(exc)
        return {**self.base, "personalizations": people}, rejected

    def request(self, items: Sequence[Item]) -> tuple[bytes, dict[int, str]]:
        """The request for `items` as the JSON bytes a send posts (orjson: UTF-8, compact, in
        the body's key order), and the recipients left out (key -> reason)."""
        body, rejected = self.body(items)
        return orjson.dumps(body), rejected
