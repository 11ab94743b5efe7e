"""What every message of one send shares, and the per-recipient values derived from it.

A `Mailing` is made once per send from a Build: the subject, the once-rendered HTML and text
(with %%placeholders%%), the sender settings and how unsubscribe links are made. Transports
personalise it per recipient by substitution; nothing is rendered per recipient.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from newsletter.build.package import message_id_for
from newsletter.build.schema import PublicationConfig
from newsletter.core.personalise import PLACEHOLDER, Recipient, placeholders_in, value_for
from newsletter.core.tokens import unsubscribe_url

#: SendGrid replaces this tag with the recipient's unsubscribe-group link (asm.group_id set).
ASM_UNSUBSCRIBE_TAG = "<%asm_group_unsubscribe_raw_url%>"


@dataclass(frozen=True)
class Item:
    """One message to hand over: a ledger row id (or a position, outside the ledger)."""

    key: int
    recipient: Recipient


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
    #: click tracking: fills `%%link|N%%` per recipient (newsletter.events.tracking.LinkUrls)
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

    def values(self, recipient: Recipient, unsubscribe: str | None = None) -> dict[str, str]:
        """Raw (unescaped) value of each placeholder for `recipient`."""
        link = unsubscribe if unsubscribe is not None else self.unsubscribe(recipient.email)
        tracked = self.link_url
        return {text: tracked(recipient, fallback) if tracked and key == "link"
                else value_for(key, fallback, recipient, link)
                for text, key, fallback in self._parsed}

    def message_id(self, key: int | str) -> str:
        """A Message-ID unique to this send and recipient."""
        return message_id_for(self.config, self.slug, self.send_ref, str(key))
