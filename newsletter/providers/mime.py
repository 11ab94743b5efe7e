"""Fast per-recipient MIME messages for the outbox and SMTP transports.

`package.compose()` builds one skeleton message per send (so headers, structure and encodings
are exactly the build's); per recipient the four per-recipient headers are swapped in and the
two parts are filled from `QPTemplate`s, which quoted-printable encode the static text between
placeholders once (per starting column) and only the substituted values per recipient. That
is about fifty times faster than composing each message with the email package.
"""

from __future__ import annotations

import binascii
import datetime as dt
import html
import re
import unicodedata
from email.headerregistry import Address
from email.utils import format_datetime

from newsletter.compose.package import POLICY, compose, publication_slug
from newsletter.compose.schema import PublicationConfig
from newsletter.core.personalise import PLACEHOLDER, Recipient, value_for
from newsletter.providers.mailing import Mailing

_HTML_MARK = "\x00NLHTML\x00"
_TEXT_MARK = "\x00NLTEXT\x00"
_SKELETON_TO = "skeleton@to.invalid"
_SKELETON_UNSUB = "https://unsubscribe.invalid/skeleton"
_SKELETON_MID = "<skeleton@id.invalid>"
_SKELETON_DATE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Characters that force a display name into a quoted string (RFC 5322 specials).
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


def encode_body(content: str) -> bytes:
    """Quoted-printable body with CRLF line ends, as the email package would send it."""
    text = content.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return binascii.b2a_qp(text.replace("\n", "\r\n").encode("utf-8"), False, True, False)


#: a display name longer than this is cut in the To header (the body keeps it whole)
MAX_DISPLAY_NAME = 200


def display_name(name: str) -> str:
    """A name fit for a header: line breaks, tabs and other control characters become
    spaces, runs of blanks one (a name from a CRM export may hold any of them), and at most
    MAX_DISPLAY_NAME characters, so no header line outgrows SMTP's 998."""
    clean = " ".join("".join(" " if unicodedata.category(c) == "Cc" else c
                             for c in name).split())
    return clean[:MAX_DISPLAY_NAME].rstrip()


def format_to(recipient: Recipient) -> bytes:
    """The To header line (with CRLF); ASCII names are formatted directly, others (and long
    ones, which must be folded) via email. An address with a non-ASCII local part can only
    travel with SMTPUTF8: its header is UTF-8 as it is (RFC 6532)."""
    name = display_name(recipient.name)
    if not name:
        value = recipient.email
    elif not recipient.email.isascii() or name.isascii():
        if _SPECIALS.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        value = f"{name} <{recipient.email}>"
    else:
        header = POLICY.header_factory("To", str(Address(name, addr_spec=recipient.email)))
        return header.fold(policy=POLICY).encode("ascii")
    return f"To: {value}\r\n".encode()


_MAX_LINE = 76


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _qp_from(text: str, column: int) -> tuple[bytes, int]:
    """Quoted-printable `text` as if it started at output `column`; returns it and the end column.

    binascii has no start-column argument, so `column` filler characters go first and are cut
    off again; soft line breaks then fall exactly where they would in the whole line. A final
    sentinel character (cut off too) stands for whatever follows, so the last line keeps room
    for a soft break and trailing blanks stay literal (see `QPTemplate.render`). binascii writes
    77-character lines when it encodes a blank before a line end late in a line: those get an
    extra soft break.
    """
    data = ("x" * column + text + "x").encode("utf-8")
    encoded = binascii.b2a_qp(data, False, True, False)
    if "\r\n" not in text:  # binascii then soft-breaks with a bare LF
        encoded = encoded.replace(b"=\n", b"=\r\n")
    encoded = _wrap_long_lines(encoded)[column:-1]
    last_break = encoded.rfind(b"\r\n")
    end = len(encoded) - last_break - 2 if last_break >= 0 else column + len(encoded)
    return encoded, end


def _wrap_long_lines(encoded: bytes) -> bytes:
    """Soft-break every line longer than 76 characters."""
    lines = encoded.split(b"\r\n")
    if max(map(len, lines)) <= _MAX_LINE:
        return encoded
    return b"\r\n".join(_wrap(line) if len(line) > _MAX_LINE else line for line in lines)


def _wrap(line: bytes) -> bytes:
    """Soft-break one over-long encoded line, never inside an =XX escape."""
    parts = []
    while len(line) > _MAX_LINE:
        cut = _MAX_LINE - 1
        escape = line.rfind(b"=", cut - 2, cut)
        if escape != -1:
            cut = escape
        parts.append(line[:cut] + b"=")
        line = line[cut:]
    parts.append(line)
    return b"\r\n".join(parts)


class QPTemplate:
    """One message part with placeholders, encoded quoted-printable per recipient, fast.

    Static runs between placeholders are encoded once per starting column (a run's encoding
    depends only on where its first line starts), values per recipient. Every output line stays
    within 76 characters and decodes to exactly the substituted text.
    """

    def __init__(self, content: str, *, as_html: bool):
        self.as_html = as_html
        text = _crlf(content)
        if not text.endswith("\r\n"):
            text += "\r\n"
        self.runs: list[str] = []  # static text; placeholders sit between consecutive runs
        self.holes: list[re.Match[str]] = []
        last = 0
        for match in PLACEHOLDER.finditer(text):
            self.runs.append(text[last : match.start()])
            self.holes.append(match)
            last = match.end()
        self.runs.append(text[last:])
        self._cache: dict[tuple[int, int], tuple[bytes, int]] = {}

    def _run(self, index: int, column: int) -> tuple[bytes, int]:
        key = (index, column)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = _qp_from(self.runs[index], column)
        return hit

    def render(self, mapping: dict[str, str]) -> bytes:
        """The encoded part with each placeholder replaced by its (escaped) value."""
        out: list[bytes] = []
        column = 0

        def add(chunk: bytes, end: int) -> None:
            nonlocal column
            if not chunk:
                return
            if chunk.startswith(b"\r\n") and out and out[-1][-1:] in (b" ", b"\t"):
                # A blank left at a hard line end where two pieces met: encode it (decoders
                # drop bare trailing blanks), with a soft break first if the line is full.
                prev = out[-1]
                blank = b"=20" if prev[-1] == 0x20 else b"=09"
                out[-1] = prev[:-1] + (blank if column + 2 <= _MAX_LINE else b"=\r\n" + blank)
            out.append(chunk)
            column = end

        add(*self._run(0, 0))
        for index, hole in enumerate(self.holes, start=1):
            value = mapping.get(hole.group(0))
            if value is None:
                value = value_for(hole.group(1), hole.group(2) or "", Recipient(""), "")
            if self.as_html:
                value = html.escape(value, quote=True)
            if value:
                add(*_qp_from(_crlf(value), column))
            add(*self._run(index, column))
        return b"".join(out)


def sender_id(config: PublicationConfig) -> str:
    """Gmail's SenderId (5 to 15 characters, the same on all our mail): the From domain as
    a label, `example-org`."""
    domain = config.sender.email.rsplit("@", 1)[1].lower()
    label = "".join(c if c.isascii() and c.isalnum() else "-" for c in domain).strip("-")
    label = label[:15].rstrip("-")
    return label if len(label) >= 5 else f"{label}-mail"[:15]


def feedback_id(config: PublicationConfig, issue: str, send_ref: str) -> str:
    """The Feedback-ID header Gmail's feedback loop reads, `a:b:c:SenderId` (its bulk-sender
    docs): `<issue slug>:<send id>:<publication slug>:<sender id>`, so Postmaster Tools
    reports complaint rates per send, per publication and for the sender as a whole."""
    def field(value: str) -> str:
        return "".join(c for c in value if c.isascii() and c.isprintable() and c not in ": ")

    return ":".join([field(issue), field(send_ref), publication_slug(config),
                     sender_id(config)])


class MimeRenderer:
    """Renders complete RFC 5322 messages for one mailing."""

    def __init__(self, mailing: Mailing, subject: str | None = None):
        self.mailing = mailing
        skeleton = compose(
            mailing.config,
            subject=subject or mailing.subject,
            html=_HTML_MARK,
            text=_TEXT_MARK,
            recipient=Recipient(email=_SKELETON_TO),
            unsubscribe=_SKELETON_UNSUB,
            message_id=_SKELETON_MID,
            date=_SKELETON_DATE,
            boundary=f"=_{mailing.content_hash[:32]}",
            extra_headers={"Feedback-ID": feedback_id(mailing.config, mailing.slug,
                                                      mailing.send_ref)},
        ).as_bytes()
        self._parts = self._split(skeleton)
        self._text = QPTemplate(mailing.text, as_html=False)
        self._html = QPTemplate(mailing.html, as_html=True)

    @staticmethod
    def _split(skeleton: bytes) -> list[bytes | str]:
        """The skeleton as literal byte runs and named holes."""
        holes = {
            f"To: {_SKELETON_TO}\r\n".encode(): "to",
            f"<{_SKELETON_UNSUB}>".encode(): "unsubscribe",
            f"Message-ID: {_SKELETON_MID}\r\n".encode(): "message_id",
            f"Date: {format_datetime(_SKELETON_DATE)}\r\n".encode(): "date",
            encode_body(_TEXT_MARK): "text",
            encode_body(_HTML_MARK): "html",
        }
        pattern = re.compile(b"|".join(re.escape(k) for k in holes))
        parts: list[bytes | str] = []
        last = 0
        for match in pattern.finditer(skeleton):
            parts.append(skeleton[last : match.start()])
            parts.append(holes[match.group(0)])
            last = match.end()
        parts.append(skeleton[last:])
        found = [p for p in parts if isinstance(p, str)]
        if sorted(found) != sorted(holes.values()):
            raise RuntimeError(f"unexpected message skeleton (found {found})")
        return parts

    def render(
        self, recipient: Recipient, message_id: str, date: dt.datetime | None = None
    ) -> bytes:
        """The complete message for one recipient."""
        unsubscribe = self.mailing.unsubscribe(recipient.email)
        mapping = self.mailing.values(recipient, unsubscribe)
        fill = {
            "to": format_to(recipient),
            "unsubscribe": f"<{unsubscribe}>".encode("ascii"),
            "message_id": f"Message-ID: {message_id}\r\n".encode("ascii"),
            "date": f"Date: {format_datetime(date or dt.datetime.now(dt.UTC))}\r\n".encode(),
            "text": self._text.render(mapping),
            "html": self._html.render(mapping),
        }
        return b"".join(p if isinstance(p, bytes) else fill[p] for p in self._parts)
