"""A send's frozen message: what it sends, stored in the ledger when it starts.

An `Artifact` holds everything a message of the send is made from: the subject, the HTML and
text parts with their %%placeholders%% (the tracked HTML and its links when click tracking is
on), the sender, reply-to and list name, the public URL its unsubscribe and preference links
point at, the provider's categories and unsubscribe group, and the slugs of the issue family. Every
run of the send (the first and each resume) makes its messages from it, whatever changed since:
an edit of the issue, a new template, a new release of newsletter. Each message's per-recipient
values (name, links signed with the current secret) are filled in as before.

What changed is told by comparing sources (`source_hash()`: the issue's folder, the
publication's templates and newsletter.yaml), only as a note: the send goes on as it started.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.core.errors import InputError
from newsletter.providers.mailing import Mailing, PlainLinks, filing

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication
    from newsletter.compose.schema import PublicationConfig

#: the layout of `send_artifacts` rows this version writes (and reads)
FORMAT = 1


@dataclass(frozen=True)
class Artifact:
    """What every message of one send is made from."""

    slug: str
    subject: str
    html: str
    text: str
    content_hash: str
    publication: str  # the publication's name (List-Id)
    sender_name: str
    sender_email: str
    reply_to: str | None
    public_url: str
    categories: tuple[str, ...]
    asm_group_id: int | None
    family: tuple[str, ...]  # the slugs of the issue and its editions
    links: dict[int, str] | None  # tracked links, position -> URL (None: not tracked)
    source_hash: str | None
    format: int = FORMAT

    @classmethod
    def freeze(cls, pub: Publication, build: Build, family: tuple[str, ...]) -> Artifact:
        """The artifact of a send of `build` (the tracked HTML when click tracking is on)."""
        config = pub.config
        tracked = build.tracked_html is not None
        categories, group = filing(config)
        return cls(
            slug=build.slug, subject=build.subject, html=build.tracked_html or build.html,
            text=build.text, content_hash=build.content_hash, publication=config.name,
            sender_name=config.sender.name, sender_email=config.sender.email,
            reply_to=config.reply_to, public_url=config.public_url,
            categories=categories, asm_group_id=group,
            family=tuple(dict.fromkeys((build.slug, *family))),
            links={link.position: link.url for link in build.links if link.trackable}
            if tracked else None,
            source_hash=source_hash(pub, build.slug),
        )

    # -- storage ----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The JSON document stored beside the parts."""
        return {
            "publication": self.publication,
            "sender": {"name": self.sender_name, "email": self.sender_email},
            "reply_to": self.reply_to, "public_url": self.public_url,
            "categories": list(self.categories), "asm_group_id": self.asm_group_id,
            "family": list(self.family),
            "links": None if self.links is None else {str(k): v for k, v in self.links.items()},
        }

    @classmethod
    def thaw(cls, slug: str, *, format: int, subject: str, html: str, text: str,
             content_hash: str, settings: dict[str, Any], source_hash: str | None
             ) -> Artifact:
        """An artifact as stored (see `settings()`)."""
        links = settings.get("links")
        return cls(
            slug=slug, subject=subject, html=html, text=text, content_hash=content_hash,
            publication=settings["publication"], sender_name=settings["sender"]["name"],
            sender_email=settings["sender"]["email"], reply_to=settings.get("reply_to"),
            public_url=settings["public_url"],
            categories=tuple(settings.get("categories") or ()),
            asm_group_id=settings.get("asm_group_id"),
            family=tuple(settings.get("family") or (slug,)),
            links=None if links is None else {int(k): v for k, v in links.items()},
            source_hash=source_hash, format=format,
        )

    # -- sending ----------------------------------------------------------------------------
    def config(self, current: PublicationConfig) -> PublicationConfig:
        """The publication's settings with the frozen sender, reply-to, name and public URL."""
        sender = current.sender.model_copy(update={"name": self.sender_name,
                                                   "email": self.sender_email})
        return current.model_copy(update={"name": self.publication, "sender": sender,
                                          "reply_to": self.reply_to,
                                          "public_url": self.public_url})

    def mailing(self, current: PublicationConfig, send_ref: str, *, secret: str,
                subject: str | None = None, send_at: dt.datetime | None = None,
                batch_id: str | None = None) -> Mailing:
        """The Mailing transports personalise: this artifact's parts, under `send_ref`.

        Tracked links are filled with their plain URLs here; a send's run replaces
        `link_url` with the click-tracking one (newsletter.events.tracking).
        """
        mailing = Mailing(
            config=self.config(current), slug=self.slug, subject=subject or self.subject,
            html=self.html, text=self.text, content_hash=self.content_hash, send_ref=send_ref,
            secret=secret, send_at=send_at, batch_id=batch_id,
            categories=list(self.categories), asm_group_id=self.asm_group_id,
        )
        if self.links is not None:
            mailing = dataclasses.replace(mailing, link_url=PlainLinks(self.links))
        return mailing


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def source_hash(pub: Publication, slug: str) -> str | None:
    """A digest of what an issue's message is made from: its folder, the publication's
    template folder and newsletter.yaml (None when the issue's folder is gone)."""
    try:
        folder = pub.issue_dir(slug)
    except InputError:
        return None
    digest = hashlib.sha256()
    sources = [(f"issue/{p.relative_to(folder)}", p) for p in _files(folder)]
    templates = pub.root / "templates" / pub.config.template
    sources += [(f"template/{p.relative_to(templates)}", p) for p in _files(templates)]
    sources.append(("newsletter.yaml", pub.root / "newsletter.yaml"))
    for name, path in sources:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        digest.update(name.encode("utf-8") + b"\0" + data + b"\0")
    return digest.hexdigest()
