"""A real IMAP server for the bounce mailbox tests: Dovecot, started once per test session.

`dovecot` starts /usr/sbin/dovecot in the foreground with a configuration in a private folder
(docs: /work/shared/ENVIRONMENT.md; Debian's dovecot-imapd, installed by .ci/run): plain IMAP
on a free port of 127.0.0.1, users from a passwd-file, Maildir homes. `bounce_mailbox` gives a
test a user of its own (so an empty mailbox) and helpers to put messages in and look inside.
Without Dovecot the tests skip, or fail when CI is set.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = "/usr/sbin/dovecot"
SAMPLES = Path(__file__).parent / "providers" / "bounce_samples"

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
first_valid_uid = {first_uid}
auth_cache_size = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={base}/mail/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = {separator}
  prefix = {prefix}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
default_internal_user = {user}
default_login_user = {login_user}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def crlf(raw: bytes) -> bytes:
    """Line ends as IMAP wants them."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def sample(name: str) -> bytes:
    """A sample message from tests/providers/bounce_samples (by file name prefix)."""
    found = sorted(SAMPLES.glob(f"{name}*.eml"))
    assert found, name
    return found[0].read_bytes()


USERS = 400  # written before the start: Dovecot may miss a passwd-file edited twice a second


@dataclass
class Dovecot:
    """A running Dovecot and the folder it keeps its users and mail in."""

    base: Path
    port: int
    process: subprocess.Popen
    password: str
    handed_out: int = 0

    def add_user(self) -> tuple[str, str]:
        """A user nobody has used yet (so an empty mailbox)."""
        self.handed_out += 1
        assert self.handed_out < USERS, "raise USERS in tests/mail_fixtures.py"
        return f"bounces{self.handed_out:04d}", self.password


def _start(prefix: str = "", separator: str = "/") -> Iterator[Dovecot]:
    from tests.conftest import need

    need("Dovecot (apt-get install dovecot-imapd)", Path(DOVECOT).exists())
    base = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    os.chmod(base, 0o755)
    (base / "mail").mkdir()
    password = uuid.uuid4().hex
    (base / "users").write_text("".join(f"bounces{n:04d}:{{PLAIN}}{password}\n"
                                        for n in range(USERS)))
    os.chmod(base / "users", 0o644)
    if os.geteuid() == 0:  # imap-login refuses root, and mail access for uid 0 is refused
        user, login_user, first_uid = "dovecot", "dovenull", 100
        shutil.chown(base / "mail", "dovecot", "dovecot")
    else:
        import pwd

        user = login_user = pwd.getpwuid(os.geteuid()).pw_name
        first_uid = min(os.geteuid(), 100)
    port = _free_port()
    conf = base / "dovecot.conf"
    conf.write_text(_CONFIG.format(base=base, port=port, user=user, group=user,
                                   login_user=login_user, first_uid=first_uid,
                                   prefix=prefix, separator=separator))
    process = subprocess.Popen([DOVECOT, "-c", str(conf), "-F"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:  # wait for the greeting (the event), not for a fixed time
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"* OK"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log = (base / "dovecot.log").read_text() if (base / "dovecot.log").exists() \
                    else ""
                out = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"Dovecot did not start: {out}{log}")
            time.sleep(0.05)
        yield Dovecot(base, port, process, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot for this session (plain IMAP on 127.0.0.1)."""
    yield from _start()


@pytest.fixture(scope="session")
def dovecot_inbox_namespace() -> Iterator[Dovecot]:
    """A Dovecot that keeps every folder under INBOX (`INBOX.Processed`), as Courier and
    Cyrus do."""
    yield from _start(prefix="INBOX.", separator=".")


@dataclass
class BounceMailbox:
    """One user's mailbox on the test Dovecot."""

    server: Dovecot
    user: str
    password: str

    @property
    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.server.port}/INBOX"

    def connect(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.server.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        conn = self.connect()
        try:
            for raw in messages:
                status, data = conn.append(folder, None, None, crlf(raw))
                assert status == "OK", data
        finally:
            conn.logout()

    def folders(self) -> list[str]:
        conn = self.connect()
        try:
            _, data = conn.list()
            return sorted(line.decode().rsplit(' "', 1)[-1].strip('"') if line.endswith(b'"')
                          else line.decode().rsplit(" ", 1)[-1] for line in data if line)
        finally:
            conn.logout()

    def messages(self, folder: str = "INBOX") -> list[tuple[bytes, bytes]]:
        """(flags, raw message) of every message in `folder`, in UID order."""
        conn = self.connect()
        try:
            status, _ = conn.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, data = conn.uid("SEARCH", None, "ALL")
            uids = (data[0] or b"").split()
            found = []
            for uid in uids:
                _, parts = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                head, body = parts[0]
                flags = re.search(rb"FLAGS \(([^)]*)\)", head)
                found.append((flags.group(1) if flags else b"", body))
            return found
        finally:
            conn.logout()


@pytest.fixture()
def bounce_mailbox(dovecot: Dovecot) -> BounceMailbox:
    """An empty mailbox of a user of its own."""
    user, password = dovecot.add_user()
    return BounceMailbox(dovecot, user, password)
