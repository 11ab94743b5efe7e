"""Package stage: turn rendered parts into a complete RFC 5322 message, a report, and dist files."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import unicodedata
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

from newsletter.compose.schema import PublicationConfig
from newsletter.core.personalise import Recipient

# Bodies are encoded under BODY_POLICY: quoted-printable lines of at most 76 columns (RFC 2045).
# Messages are serialised under POLICY: long header values such as List-Unsubscribe URLs are
# folded without RFC 2047 encoding.
BODY_POLICY = SMTP.clone(max_line_length=76)
POLICY = SMTP.clone(max_line_length=998)


def _ascii_label(text: str) -> str:
    """Lower-case ASCII letters and digits with single `-` between words."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "-".join("".join(c if c.isalnum() else " " for c in plain).split())


def publication_slug(config: PublicationConfig) -> str:
    """The publication's name as an ASCII label (`policy-experts-weekly`); the sender
    address's local part when the name has no ASCII letters (an Arabic name, say)."""
    return _ascii_label(config.name) or _ascii_label(config.sender.email.rsplit("@", 1)[0]) \
        or "newsletter"


def list_id(config: PublicationConfig) -> str:
    """A stable List-Id (RFC 2919): the name as its phrase, `<publication-slug.list-domain>`
    with the sender's domain as the list's domain (the publication's own, for every language
    edition: they are one list)."""
    own = config.own
    domain = own.sender.email.rsplit("@", 1)[1]
    return f"{own.name} <{publication_slug(own)}.{domain}>"


def compose(
    config: PublicationConfig,
    *,
    subject: str,
    html: str,
    text: str,
    recipient: Recipient,
    unsubscribe: str,
    message_id: str,
    date: dt.datetime,
    extra_headers: dict[str, str] | None = None,
    boundary: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message: text first, then HTML, UTF-8, one-click unsubscribe."""
    msg = EmailMessage(policy=BODY_POLICY)
    msg["From"] = Address(config.sender.name, addr_spec=config.sender.email)
    msg["To"] = (
        Address(recipient.name, addr_spec=recipient.email) if recipient.name else (recipient.email)
    )
    if config.reply_to:
        msg["Reply-To"] = config.reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["List-Id"] = list_id(config)
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if boundary:
        msg.set_boundary(boundary)
    msg.policy = POLICY  # headers: fold long URLs without RFC 2047 encoding
    return msg


def message_id_for(config: PublicationConfig, *parts: str) -> str:
    """A deterministic Message-ID made from `parts` and the sender's domain."""
    domain = config.sender.email.rsplit("@", 1)[1]
    return f"<{'.'.join(parts)}@{domain}>"


def write_dist(target: Path, files: dict[str, bytes], copies: dict[str, Path]) -> None:
    """Write `files` and copy `copies` (both keyed by relative path) into `target` at once.

    Everything goes to a temporary sibling folder first, which then replaces `target`; if
    anything fails, the previous `target` is left exactly as it was.
    """
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    try:
        os.chmod(staging, 0o755)
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for name, source in copies.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
        retired.rmdir()
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)
