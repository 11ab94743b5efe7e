"""A local copy of an institute's website for the drafting tests, served over HTTPS on
127.0.0.1 (a certificate from a throwaway authority; clients find it through SSL_CERT_FILE, as
`Site.env` sets it).

The pages and feeds under draft_site/ are static, with `{BASE}` standing for the server's
address and `{RFC:N}` / `{ISO:N}` for the time N days ago (RSS and Atom date formats), so that
"the last 7 days" always finds the same entries. Besides them the server has paths that
misbehave on purpose:

- `/slow/...` accepts the request and never answers (until the server stops): a timeout;
- `/missing/...` answers 404;
- `/huge/...` streams HTML without a length, far past the drafter's size limit;
- `/huge-declared/...` declares a 50 MB body;
- `/images/NAME.jpg` a 1200 x 630 JPEG made with Pillow; `/images/not-an-image.jpg` HTML.

Every request is logged (path and User-Agent), and `wait_for(path)` waits on an event until a
request for that path arrives.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import ipaddress
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SITE = Path(__file__).with_name("draft_site")
_DAYS = re.compile(r"\{(RFC|ISO):(\d+)\}")
TYPES = {".xml": "application/rss+xml", ".html": "text/html; charset=utf-8",
         ".txt": "text/plain; charset=utf-8"}


def photo(seed: int = 0) -> bytes:
    """A 1200 x 630 JPEG photograph-like gradient."""
    from PIL import Image, ImageChops

    across = Image.linear_gradient("L").rotate(90).resize((1200, 630))
    down = Image.linear_gradient("L").resize((1200, 630)).point(lambda v: (v + seed) % 256)
    image = Image.merge("RGB", (across, down, ImageChops.invert(across)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(authority certificate, server certificate, server key) for 127.0.0.1, in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def make(subject: str, key, issuer: str, signer, *, authority: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=authority, path_length=None), True))
        if authority:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make("Drafting tests CA", ca_key, "Drafting tests CA", ca_key, authority=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make("127.0.0.1", key, "Drafting tests CA", ca_key, authority=False)
    files = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


@dataclass
class Site:
    """The running server: its base URL, the requests it saw, and events to wait on."""

    base: str = ""
    ca: Path = Path()  # the authority's certificate: SSL_CERT_FILE for clients
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, User-Agent)
    stop: threading.Event = field(default_factory=threading.Event)
    arrived: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables under which clients trust the site's certificate."""
        return {"SSL_CERT_FILE": str(self.ca)}

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.requests]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def event(self, path: str) -> threading.Event:
        with self.lock:
            return self.arrived.setdefault(path, threading.Event())

    def saw(self, path: str, agent: str) -> None:
        with self.lock:
            self.requests.append((path, agent))
        self.event(path).set()

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.arrived.clear()

    def render(self, text: str) -> str:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)

        def when(match: re.Match[str]) -> str:
            moment = now - dt.timedelta(days=int(match.group(2)))
            if match.group(1) == "RFC":
                return email.utils.format_datetime(moment, usegmt=True)
            return moment.isoformat().replace("+00:00", "Z")

        return _DAYS.sub(when, text.replace("{BASE}", self.base))


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            site.saw(path, self.headers.get("User-Agent", ""))
            if path.startswith("/slow/"):
                site.stop.wait(30)
                return
            if path.startswith("/missing/"):
                self._send(404, b"<h1>Not found</h1>", "text/html")
                return
            if path.startswith("/huge/"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                chunk = b"<p>" + b"padding " * 8000 + b"</p>\n"
                try:
                    for _ in range(1000):  # about 64 MB at most; the client hangs up first
                        self.wfile.write(chunk)
                except OSError:
                    pass
                return
            if path.startswith("/huge-declared/"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(50 * 1024 * 1024))
                self.end_headers()
                self.wfile.write(b"<html><body><p>Only the start.</p>")
                return
            if path.startswith("/images/"):
                if path.endswith("not-an-image.jpg"):
                    self._send(200, b"<html>not a picture</html>", "image/jpeg")
                    return
                with site.lock:
                    data = site.images.setdefault(path, photo(len(site.images) * 40))
                self._send(200, data, "image/jpeg")
                return
            file = (SITE / path.lstrip("/")).resolve()
            if SITE not in file.parents or not file.is_file():
                self._send(404, b"<h1>Not found</h1>", "text/html")
                return
            body = site.render(file.read_text(encoding="utf-8")).encode("utf-8")
            kind = TYPES.get(file.suffix, "application/octet-stream")
            if file.name == "atom.xml":
                kind = "application/atom+xml"
            elif path.startswith("/ar/") and file.suffix == ".html":
                kind = "text/html"  # no charset: the page's <meta charset> says it
            self._send(200, body, kind)

    return Handler


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """The test website on a free port of 127.0.0.1, for the tests of one module."""
    with tempfile.TemporaryDirectory(prefix="draft-site-") as folder:
        ca, cert, key = certificates(Path(folder))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        state = Site(ca=ca)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        state.base = f"https://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield state
        finally:
            state.stop.set()
            server.shutdown()
            server.server_close()


@pytest.fixture()
def fresh_site(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    """The module's site with its request log emptied, its certificate trusted."""
    site.clear()
    for name, value in site.env.items():
        monkeypatch.setenv(name, value)
    return site
