"""Dispatch fixtures: a publication with subscribers on each database, the fake SendGrid
server, a real aiosmtpd server (plain, STARTTLS or TLS), and helpers to run the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, insert, text

from newsletter.cli import main
from newsletter.db import open_database
from newsletter.db.tables import subscriber_tags, subscribers
from tests.db_fixtures import db_url, postgres_server, postgres_url  # noqa: F401
from tests.fake_sendgrid import API_KEY, FakeSendGrid

ROOT = Path(__file__).resolve().parents[2]
SLUG = "2026-11-24"
SECRET = "dispatch-test-secret-at-least-32-characters"
CHILD_APP = "newsletter-test-child"  # application_name of spawned processes' PostgreSQL sessions


def artifact(slug: str = SLUG, subject: str = "s") -> Any:
    """A small frozen message, for tests that drive the ledger directly."""
    from newsletter.dispatch.artifact import Artifact

    return Artifact(slug=slug, subject=subject, html="<p>Hello %%name%%</p>",
                    text="Hello %%name%%", content_hash="x" * 64, publication="P",
                    sender_name="P", sender_email="newsletter@example.org", reply_to=None,
                    public_url="https://news.example.org/", categories=(), asm_group_id=None,
                    family=(slug,), links=None, source_hash=None)


def add_people(engine: Engine, count: int, *, start: int = 0, tags: tuple[str, ...] = (),
               name: str | None = None, attributes: dict | None = None,
               domain: str = "example.com") -> list[str]:
    """Insert `count` active subscribers quickly; returns their addresses in id order."""
    now = dt.datetime.now(dt.UTC)
    emails = [f"reader{n:06d}@{domain}" for n in range(start, start + count)]
    rows = [{
        "email": e, "email_key": e.lower(),
        "name": name if name is not None else f"Reader {n}",
        "status": "active", "attributes": attributes or {"role": "press"}, "source": "test",
        "created_at": now, "updated_at": now, "status_changed_at": now,
    } for n, e in zip(range(start, start + count), emails, strict=True)]
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(subscribers), rows[chunk:chunk + 5000])
        if tags:
            ids = conn.execute(subscribers.select().with_only_columns(subscribers.c.id)
                               .where(subscribers.c.email.in_(emails))).scalars().all()
            conn.execute(insert(subscriber_tags),
                         [{"subscriber_id": i, "tag": t} for i in ids for t in tags])
    return emails


@dataclass
class Pub:
    """A private publication wired to one database, outbox and fake services."""

    root: Path
    db_url: str
    env: dict[str, str]
    engine: Engine

    @property
    def outbox(self) -> Path:
        return Path(self.env["NEWSLETTER_OUTBOX"])

    def cli(self, *args: str, input: str | None = None) -> Result:
        """Run `newsletter -C ROOT ARGS` in this process."""
        return CliRunner().invoke(main, ["-C", str(self.root), *args], input=input,
                                  env=self.env, catch_exceptions=False)

    def spawn(self, *args: str, **kwargs: Any) -> subprocess.Popen:
        """Start `python -m newsletter -C ROOT ARGS` as a real process (its PostgreSQL
        sessions carry the application_name CHILD_APP, for `settle()`)."""
        return subprocess.Popen([sys.executable, "-m", "newsletter", "-C", str(self.root), *args],
                                env={**os.environ, **self.env, "PGAPPNAME": CHILD_APP}, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **kwargs)

    def settle(self, timeout: float = 30) -> None:
        """After a spawned process was killed: wait until the database has finished with it.

        PostgreSQL may still be running a COMMIT the dead process had sent; its server process
        ends once it reads the closed connection, so wait until no session of a spawned process
        is left on this database. On SQLite the dead process's transaction died with it."""
        if self.engine.dialect.name != "postgresql":
            return
        deadline = time.monotonic() + timeout
        query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND application_name = :app")
        while True:
            with self.engine.connect() as conn:
                if not conn.execute(query, {"app": CHILD_APP}).scalar_one():
                    return
            assert time.monotonic() < deadline, "a killed process's session never ended"
            time.sleep(0.01)


def pub_env(db_url: str, tmp_path: Path,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a test publication (also set in this process)."""
    env = {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET": SECRET,
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
        "NEWSLETTER_TRANSPORT": "outbox",
        "NEWSLETTER_RETRY_BASE": "0.01",
        "NEWSLETTER_RETRY_CAP": "0.05",
        "NEWSLETTER_SKIP_URL_CHECK": "1",  # archive_url is fictional here; see tests/web/publish
        "PYTHONPATH": str(ROOT),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("SENDGRID_API_KEY", "SENDGRID_API_URL", "SMTP_URL", "NEWSLETTER_RETRY_ATTEMPTS",
                "NEWSLETTER_SENDGRID_BATCH", "NEWSLETTER_LEDGER_PATIENCE"):
        monkeypatch.delenv(key, raising=False)
    return env


@pytest.fixture()
def pub(warm_publication: Path, migrated_db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Pub]:
    env = pub_env(migrated_db_url, tmp_path, monkeypatch)
    engine = open_database(migrated_db_url)
    yield Pub(warm_publication, migrated_db_url, env, engine)
    engine.dispose()


@pytest.fixture()
def sendgrid(pub: Pub, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSendGrid]:
    """The fake SendGrid server, with the publication pointed at it."""
    with FakeSendGrid() as fake:
        for key, value in {"SENDGRID_API_KEY": API_KEY, "SENDGRID_API_URL": fake.url}.items():
            pub.env[key] = value
            monkeypatch.setenv(key, value)
        yield fake


# -- SMTP -------------------------------------------------------------------------------------
@dataclass
class Mailbox:
    """What a test SMTP server received, and how it should misbehave."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse_rcpt: set[str] = field(default_factory=set)  # answer 550 to these
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)  # next replies to RCPT
    data_replies: dict[str, str] = field(default_factory=dict)  # end-of-DATA reply per rcpt
    hang_up_every: int = 0  # close the connection after every n-th accepted message
    lose_reply_once: bool = False  # take the next message, then hang up without replying
    gate_at: int = 0  # hold the n-th message's DATA (not yet taken) until `gate` is set
    gate: threading.Event = field(default_factory=threading.Event)
    at_gate: threading.Event = field(default_factory=threading.Event)
    datas: int = 0

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if address in self.refuse_rcpt:
            return "550 5.1.1 no such mailbox"
        queued = self.rcpt_replies.get(address)  # the last reply repeats; "250" accepts
        reply = (queued.pop(0) if len(queued) > 1 else queued[0]) if queued else "250"
        if not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        refused = next((self.data_replies[r] for r in envelope.rcpt_tos
                        if r in self.data_replies), None)
        if refused:
            return refused
        self.datas += 1
        if self.gate_at and self.datas == self.gate_at:
            self.at_gate.set()
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.lose_reply_once:
            self.lose_reply_once = False
            server.transport.close()
            return "250 OK (never heard)"
        if self.hang_up_every and len(self.messages) % self.hang_up_every == 0:
            asyncio.get_running_loop().call_soon(server.transport.close)
        return f"250 2.0.0 queued as Q{len(self.messages)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class SmtpServer:
    """A real aiosmtpd server on 127.0.0.1 in a thread."""

    def __init__(self, mode: str, tls: tuple[Path, Path], user: str = "", password: str = "",
                 smtputf8: bool = True):
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mailbox = Mailbox()
        self.port = _free_port()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        kwargs: dict[str, Any] = {}
        if user:
            kwargs.update(authenticator=authenticate, auth_required=True)
        if mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif mode == "plain":
            kwargs.update(auth_require_tls=False)
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     ssl_context=context if mode == "tls" else None,
                                     enable_SMTPUTF8=smtputf8, **kwargs)
        self.stopped = False
        scheme = "smtps" if mode == "tls" else "smtp"
        login = f"{user}:{password}@" if user else ""
        self.url = f"{scheme}://{login}127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.stopped:
            self.stopped = True
            self.controller.stop()


@pytest.fixture()
def smtp_server(pub: Pub, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    """Factory: `smtp_server(mode, user, password)` starts a server and points SMTP_URL at it."""
    started: list[SmtpServer] = []
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    pub.env["SSL_CERT_FILE"] = str(tls_files[0])

    def start(mode: str = "starttls", user: str = "", password: str = "",
              smtputf8: bool = True) -> SmtpServer:
        server = SmtpServer(mode, tls_files, user, password, smtputf8).__enter__()
        started.append(server)
        pub.env["SMTP_URL"] = server.url
        monkeypatch.setenv("SMTP_URL", server.url)
        return server

    yield start
    for server in started:
        server.__exit__()


# -- what people received ----------------------------------------------------------------------
TO = re.compile(rb"^To: .*?<?([^<>\s]+@[^<>\s]+)>?\r$", re.M)


def _lang(data: bytes) -> str:
    from lxml import html as lxml_html

    msg = email.message_from_bytes(data, policy=policy.default)
    return lxml_html.document_fromstring(msg.get_body(("html",)).get_content()).get("lang")


def family_mail(pub: Pub, server: SmtpServer | None = None) -> dict[str, list[str]]:
    """address -> the language (`<html lang>`) of each message of the issue family it holds,
    in the outbox (every edition, every send) and on `server`."""
    found: dict[str, list[str]] = {}
    if pub.outbox.exists():
        for path in sorted(pub.outbox.glob(f"{SLUG}*/*/*.eml")):
            data = path.read_bytes()
            found.setdefault(TO.search(data).group(1).decode(), []).append(_lang(data))
    for _, rcpts, data in (server.mailbox.messages if server else []):
        found.setdefault(rcpts[0], []).append(_lang(data))
    return found


def ledger_states(pub: Pub) -> dict[str, list[str]]:
    """address -> the state of each of its ledger rows, oldest first."""
    from sqlalchemy import select

    from newsletter.db.ledger_tables import send_recipients

    found: dict[str, list[str]] = {}
    with pub.engine.connect() as conn:
        for address, state in conn.execute(select(send_recipients.c.email,
                                                  send_recipients.c.state)
                                           .order_by(send_recipients.c.id)):
            found.setdefault(address, []).append(state)
    return found


def kill_when(pub: Pub, proc: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """SIGKILL `proc` (spawned by `pub`) once `ready()`; False if it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    pub.settle()  # PostgreSQL may still be finishing a COMMIT the dead process had sent
    return True


# -- the public side, as a subscriber uses it ----------------------------------------------------
class Serve:
    """`newsletter serve` as a real process, and a subscriber's clicks on it."""

    def __init__(self, pub: Pub):
        self.pub = pub
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = pub.spawn("serve", "--port", str(self.port))

    def __enter__(self) -> Serve:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                httpx.get(f"{self.base}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("serve did not start")

    def __exit__(self, *exc: Any) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=30)

    def _path(self, url: str) -> str:
        from newsletter.compose.publication import Publication

        public = Publication.load(self.pub.root).config.public_url
        return self.base + "/" + url.removeprefix(public)

    def one_click(self, address: str) -> None:
        """What a mail client does with List-Unsubscribe-Post (RFC 8058)."""
        import httpx

        from newsletter.compose.publication import Publication
        from newsletter.core.tokens import unsubscribe_url

        link = unsubscribe_url(Publication.load(self.pub.root).config.public_url, SECRET,
                               address)
        answer = httpx.post(self._path(link), content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200, answer.text

    def pause(self, address: str, weeks: int = 4) -> None:
        """Open the preference page from the email's link and pause for `weeks`."""
        import httpx

        from newsletter.compose.publication import Publication
        from newsletter.core.tokens import preferences_url

        link = self._path(preferences_url(Publication.load(self.pub.root).config.public_url,
                                          SECRET, address))
        with httpx.Client() as client:
            page = client.get(link)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            answer = client.post(link, data={"csrf": csrf, "action": "save",
                                             "pause": str(weeks)})
        assert answer.status_code == 200 and "paused until" in answer.text, answer.text
