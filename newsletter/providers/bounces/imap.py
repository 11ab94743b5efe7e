"""The bounce mailbox over IMAP (stdlib imaplib): new messages in, handled ones moved out.

`imaps://user@host[:993]/INBOX` speaks TLS from the first byte; `imap://user@host[:143]/INBOX`
upgrades with STARTTLS when the server offers it and refuses to send the password in the clear
to any host but this machine. The password comes from NEWSLETTER_BOUNCES_PASSWORD.

- `new_messages()`: every message in the folder not yet flagged as unrecognised, read with
  BODY.PEEK (the \\Seen flag is left alone), at most MAX_BYTES of each (the report parts of a
  bounce come before the returned original);
- `move(uids)`: to the processed folder (created when missing, inside the personal namespace,
  e.g. `INBOX.Processed` on servers that keep every folder under INBOX): RFC 6851 MOVE when the
  server has it, else COPY, \\Deleted and EXPUNGE (UID EXPUNGE with UIDPLUS);
- `set_aside(uids)`: an unrecognised message stays in the folder with the keyword
  `$NewsletterUnrecognised`, so later reads pass it over; a server without custom keywords gets
  it moved to the folder `Unrecognised` instead.
"""

from __future__ import annotations

import imaplib
import re
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from newsletter.core.errors import FailedError, NewsletterError

KEYWORD = "$NewsletterUnrecognised"
UNRECOGNISED_FOLDER = "Unrecognised"
MAX_BYTES = 2 * 1024 * 1024
BATCH = 50
_LOCAL = {"127.0.0.1", "::1", "localhost"}
_UID = re.compile(rb"\bUID (\d+)")
_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')


@dataclass(frozen=True)
class MailboxUrl:
    """A parsed `imap_url`."""

    tls: bool
    host: str
    port: int
    user: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> MailboxUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise NewsletterError(f"bounces.imap_url {url!r} is not like imaps://user@host/INBOX")
        if parts.password is not None:
            raise NewsletterError("bounces.imap_url must not hold a password; set "
                                  "NEWSLETTER_BOUNCES_PASSWORD instead")
        tls = parts.scheme == "imaps"
        folder = unquote(parts.path.strip("/")) or "INBOX"
        return cls(tls, parts.hostname, parts.port or (993 if tls else 143),
                   unquote(parts.username), folder)

    @property
    def where(self) -> str:
        return f"{'imaps' if self.tls else 'imap'}://{self.user}@{self.host}:{self.port}/" \
               f"{self.folder}"


@dataclass(frozen=True)
class Fetched:
    """One message as the server gave it."""

    uid: int
    raw: bytes
    received: int  # INTERNALDATE, unix s (0 when unreadable)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(answer: tuple[str, list], what: str) -> list:
    status, data = answer
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise FailedError(f"the IMAP server refused {what}: {detail or status}")
    return data


class Mailbox:
    """One IMAP session on the bounce folder (a context manager)."""

    def __init__(self, url: MailboxUrl, password: str | None, processed: str,
                 timeout: float = 30.0):
        if not password:
            raise NewsletterError("NEWSLETTER_BOUNCES_PASSWORD is not set; it is the password "
                                  f"of {url.user} on {url.host}")
        self.url, self.password, self.timeout = url, password, timeout
        self.processed_name = processed
        self.conn: imaplib.IMAP4 | None = None
        self.capabilities: set[str] = set()
        self.keywords = True
        self.prefix = ""
        self.delimiter = "/"

    # -- session --------------------------------------------------------------------------
    def __enter__(self) -> Mailbox:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        url = self.url
        try:
            if url.tls:
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    url.host, url.port, ssl_context=ssl.create_default_context(),
                    timeout=self.timeout)
            else:
                conn = imaplib.IMAP4(url.host, url.port, timeout=self.timeout)
                if "STARTTLS" in conn.capabilities:
                    conn.starttls(ssl.create_default_context())
                elif url.host not in _LOCAL:
                    conn.shutdown()
                    raise FailedError(f"{url.where} does not offer STARTTLS; refusing to send "
                                      "the password unencrypted (use imaps://)")
            conn.login(url.user, self.password)
        except imaplib.IMAP4.error as exc:
            raise FailedError(f"{url.where}: login refused ({exc})") from None
        except (OSError, ssl.SSLError) as exc:
            raise FailedError(f"cannot reach the bounce mailbox {url.where}: "
                              f"{exc.strerror or exc}" if isinstance(exc, OSError)
                              else f"{url.where}: {exc}") from None
        self.conn = conn
        _, data = conn.capability()  # after login the list may have grown (MOVE, UIDPLUS)
        self.capabilities = set((data[0] or b"").decode("ascii", "replace").upper().split())
        self._namespace()
        _check(conn.select(_quote(url.folder)), f"to open {url.folder}")
        flags = conn.response("PERMANENTFLAGS")[1]
        self.keywords = bool(flags and flags[0] and b"\\*" in flags[0])

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
        self.conn = None

    def _namespace(self) -> None:
        """The personal namespace's prefix and delimiter (`INBOX.` on some servers)."""
        assert self.conn is not None
        if "NAMESPACE" in self.capabilities:
            status, data = self.conn.namespace()
            found = re.match(rb'\(\("([^"]*)" (?:"(.)"|NIL)\)', data[0] or b"") \
                if status == "OK" else None
            if found:
                self.prefix = found.group(1).decode("utf-8", "replace")
                self.delimiter = (found.group(2) or b"/").decode("ascii", "replace")
                return
        status, data = self.conn.list('""', '""')
        found = re.search(rb'\) "(.)"', data[0] or b"") if status == "OK" and data else None
        if found:
            self.delimiter = found.group(1).decode("ascii", "replace")

    def folder(self, name: str) -> str:
        """`name` inside the personal namespace (unless it already names its place)."""
        if self.prefix and not name.startswith(self.prefix) and self.delimiter not in name:
            return self.prefix + name
        return name

    def _ensure(self, name: str) -> str:
        assert self.conn is not None
        full = self.folder(name)
        status, data = self.conn.list('""', _quote(full))
        if status != "OK" or not [d for d in data if d]:
            status, data = self.conn.create(_quote(full))
            if status != "OK" and b"exist" not in b" ".join(x for x in data if x).lower():
                _check((status, data), f"to create the folder {full}")
        return full

    # -- messages -------------------------------------------------------------------------
    def new_messages(self, recheck: bool = False) -> Iterator[Fetched]:
        """Messages not yet set aside (with `recheck`, those too), oldest first."""
        assert self.conn is not None
        query = ("ALL",) if recheck or not self.keywords else ("NOT", "KEYWORD", KEYWORD)
        data = _check(self.conn.uid("SEARCH", *query), "to search the folder")
        uids = [int(u) for u in (data[0] or b"").split()]
        for start in range(0, len(uids), BATCH):
            yield from self._fetch(uids[start:start + BATCH])

    def _fetch(self, uids: list[int]) -> Iterator[Fetched]:
        assert self.conn is not None
        data = _check(self.conn.uid("FETCH", ",".join(map(str, uids)),
                                    f"(UID INTERNALDATE BODY.PEEK[]<0.{MAX_BYTES}>)"),
                      "to read messages")
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = _UID.search(head)
            if uid is None:
                continue
            date = _DATE.search(head)
            received = 0
            if date:  # imaplib gives local time; mktime turns it back into unix seconds
                parsed = imaplib.Internaldate2tuple(b'INTERNALDATE "' + date.group(1) + b'"')
                received = int(time.mktime(parsed)) if parsed else 0
            yield Fetched(int(uid.group(1)), body or b"", received)

    def move(self, uids: Iterable[int], name: str | None = None) -> None:
        """Move `uids` to the processed folder (or `name`); a message already gone (another
        reader moved it) is no error."""
        assert self.conn is not None
        chosen = sorted(set(uids))
        if not chosen:
            return
        target = self._ensure(name or self.processed_name)
        numbers = ",".join(map(str, chosen))
        if "MOVE" in self.capabilities:
            _check(self.conn.uid("MOVE", numbers, _quote(target)), f"to move to {target}")
            return
        _check(self.conn.uid("COPY", numbers, _quote(target)), f"to copy to {target}")
        _check(self.conn.uid("STORE", numbers, "+FLAGS.SILENT", "(\\Deleted)"),
               "to mark messages deleted")
        if "UIDPLUS" in self.capabilities:
            _check(self.conn.uid("EXPUNGE", numbers), "to expunge moved messages")
        else:
            _check(self.conn.expunge(), "to expunge moved messages")

    def set_aside(self, uids: Iterable[int]) -> None:
        """Leave unrecognised messages where they are, flagged (or in `Unrecognised`)."""
        assert self.conn is not None
        chosen = sorted(set(uids))
        if not chosen:
            return
        if not self.keywords:
            self.move(chosen, UNRECOGNISED_FOLDER)
            return
        _check(self.conn.uid("STORE", ",".join(map(str, chosen)), "+FLAGS.SILENT",
                             f"({KEYWORD})"), "to flag unrecognised messages")

