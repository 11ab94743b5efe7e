"""What every message of one send shares, and the per-recipient values derived from it.

A `Mailing` is made once per send from a Build: the subject, the once-rendered HTML and text
(with %%placeholders%%), the sender settings and how unsubscribe links are made. Transports
personalise it per recipient by substitution; nothing is rendered per recipient.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import idna

from newsletter.compose.package import message_id_for
from newsletter.compose.schema import PublicationConfig
from newsletter.core.personalise import PLACEHOLDER, Recipient, placeholders_in, value_for
from newsletter.core.tokens import preferences_url, unsubscribe_url

#: SendGrid replaces this tag with the recipient's unsubscribe-group link (asm.group_id set).
ASM_UNSUBSCRIBE_TAG = "<%asm_group_unsubscribe_raw_url%>"


@dataclass(frozen=True)
class Item:
    """One message to hand over: a ledger row id (or a position, outside the ledger)."""

    key: int
    recipient: Recipient


class Unsendable(ValueError):
    """One recipient's address or name cannot be put in a message; the text says why."""


def filing(config: PublicationConfig) -> tuple[tuple[str, ...], int | None]:
    """The categories and unsubscribe group a provider files each message under (newsletter.yaml's
    `sendgrid.categories` and `sendgrid.asm_group_id`), for a send to freeze."""
    return tuple(config.sendgrid.categories), config.sendgrid.asm_group_id


def wire_address(email: str) -> str:
    """`email` with its domain as IDNA A-labels (xn--...); raises Unsendable."""
    if any(c in email for c in "\r\n\0") or email.count("@") < 1:
        raise Unsendable(f"address {email[:60]!r} cannot be put in a message")
    local, _, domain = email.rpartition("@")
    if domain.isascii():
        return email
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError as exc:
        raise Unsendable(f"the domain of {email[:60]!r} cannot be encoded (IDNA): {exc}") from None


def on_the_wire(item: Item) -> Item:
    """`item` with its recipient's domain as A-labels; raises Unsendable."""
    address = wire_address(item.recipient.email)
    if address == item.recipient.email:
        return item
    return Item(item.key, dataclasses.replace(item.recipient, email=address))


@dataclass(frozen=True)
class PlainLinks:
    """Fills `%%link|N%%` with link N's own URL (no click tracking); the tracked filler
    (newsletter.events.tracking.LinkUrls) builds on it."""

    urls: Mapping[int, str]  # position -> the link's URL

    def link(self, position: str) -> tuple[int, str]:
        """(N, link N's URL), the URL '' for a position the message does not have."""
        number = int(position) if position.isdigit() else 0
        return number, self.urls.get(number, "")

    def __call__(self, recipient: Recipient, position: str) -> str:
        return self.link(position)[1]


@dataclass
class Mailing:
    """The shared parts of one send (or one test send)."""

    config: PublicationConfig
    slug: str
    subject: str
    html: str
    text: str
    content_hash: str
    send_ref: str  # the ledger's send id, or "test-..." outside the ledger
    secret: str
    send_at: dt.datetime | None = None  # SendGrid scheduling
    batch_id: str | None = None  # SendGrid batch for cancelling a scheduled send
    categories: list[str] = field(default_factory=list)
    asm_group_id: int | None = None
    #: fills `%%link|N%%` per recipient: PlainLinks, or with click tracking
    #: newsletter.events.tracking.LinkUrls
    link_url: Callable[[Recipient, str], str] | None = None

    @cached_property
    def placeholders(self) -> frozenset[str]:
        """Every distinct placeholder string the subject and the two parts use."""
        return frozenset(placeholders_in(self.subject, self.html, self.text))

    @cached_property
    def _parsed(self) -> list[tuple[str, str, str]]:
        """(placeholder, key, fallback) for each placeholder, parsed once."""
        found = []
        for text in sorted(self.placeholders):
            match = PLACEHOLDER.fullmatch(text)
            if match:
                found.append((text, match.group(1), match.group(2) or ""))
        return found

    @property
    def uses_attributes(self) -> bool:
        """Whether any placeholder needs subscriber attributes (else they need not be read)."""
        return self.link_url is not None or any(  # tracked links read `tracking: off`
            key.startswith("attr.") for _, key, _ in self._parsed)

    def unsubscribe(self, email: str) -> str:
        """The signed one-click unsubscribe URL for `email` (served by `newsletter serve`)."""
        return unsubscribe_url(self.config.public_url, self.secret, email)

    @cached_property
    def uses_preferences(self) -> bool:
        """Whether the message links to the preference page (else no token need be signed)."""
        return any(key == "preferences_url" for _, key, _ in self._parsed)

    def values(self, recipient: Recipient, unsubscribe: str | None = None) -> dict[str, str]:
        """Raw (unescaped) value of each placeholder for `recipient`."""
        link = unsubscribe if unsubscribe is not None else self.unsubscribe(recipient.email)
        prefs = preferences_url(self.config.public_url, self.secret, recipient.email) \
            if self.uses_preferences else ""
        tracked = self.link_url
        return {text: tracked(recipient, fallback) if tracked and key == "link"
                else value_for(key, fallback, recipient, link, prefs)
                for text, key, fallback in self._parsed}

    def message_id(self, key: int | str) -> str:
        """A Message-ID unique to this send and recipient."""
        return message_id_for(self.config, self.slug, self.send_ref, str(key))
