"""Amazon SNS's side of an HTTPS subscription, for tests.

- `TestPki`: a test CA, a TLS certificate it issues for the SNS hosts of a few regions, and an
  SNS signing key with its certificate (RSA, as SNS's are).
- `FakeSnsHost`: a local HTTPS server standing in for `sns.<region>.amazonaws.com`: it serves
  the signing certificate at `/SimpleNotificationService-<id>.pem` and answers
  `?Action=ConfirmSubscription` (recording each visit). `fetcher()` is the verifier's fetcher
  that connects there, trusting only the test CA: the URLs, their host checks and the TLS
  verification are the production code's own.
- `Signer`: SNS documents signed as AWS describes ("Verifying the signatures of Amazon SNS
  messages"), with a string to sign built here on its own, not with the code under test.

Fixtures (import them into a test module): `sns_pki`, `sns_signer` and the stand-in (made once
per module), `sns_host` (the stand-in, reset for each test).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:newsletter-events"
CERT_PATH = "/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"

#: the fields each type's string to sign holds, in AWS's order (Subject only when present)
NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_FIELDS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                       "Type"]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool = False,
                 hosts: tuple[str, ...] = (), days: int = 30,
                 start: dt.datetime | None = None) -> x509.Certificate:
    start = start or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class TestPki:
    """The test CA, the SNS hosts' TLS certificate and the signing key, written to `folder`."""

    __test__ = False  # not a pytest class

    folder: Path
    hosts: tuple[str, ...] = tuple(f"sns.{r}.amazonaws.com" for r in REGIONS)

    def __post_init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _certificate("Newsletter Test CA", self.ca_key, "Newsletter Test CA",
                               self.ca_key, ca=True)
        tls_key = ec.generate_private_key(ec.SECP256R1())
        tls = _certificate(self.hosts[0], tls_key, "Newsletter Test CA", self.ca_key,
                           hosts=self.hosts)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.folder / "ca.pem"
        self.ca_file.write_bytes(_pem(self.ca))
        self.tls_file = self.folder / "tls.pem"
        self.tls_file.write_bytes(_pem(tls) + tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signing_pem = _pem(_certificate("sns.amazonaws.com", self.signing_key,
                                             "Newsletter Test CA", self.ca_key))

    def client_context(self) -> ssl.SSLContext:
        """TLS for the verifier's fetcher: trusts the test CA only."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.tls_file))
        return context


@dataclass
class FakeSnsHost:
    """The stand-in for the SNS hosts (use as a context manager)."""

    pki: TestPki
    #: path -> (status, body) answered instead of the usual (e.g. the certificate: 500)
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    confirmed: list[dict[str, str]] = field(default_factory=list)
    certificate: bytes | None = None  # what the .pem path serves (default: the signing cert)

    def __enter__(self) -> FakeSnsHost:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                host.requests[parts.path] += 1
                status, body = host.answers.get(parts.path, (200, b""))
                if status == 200 and parts.path.endswith(".pem"):
                    body = host.certificate if host.certificate is not None \
                        else host.pki.signing_pem
                elif status == 200 and parts.path == "/":
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    if query.get("Action") != "ConfirmSubscription":
                        status, body = 400, b"<Error>unknown action</Error>"
                    else:
                        host.confirmed.append({**query, "Host": self.headers["Host"]})
                        body = (b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>"
                                b"<SubscriptionArn>" + query["TopicArn"].encode() +
                                b":1</SubscriptionArn></ConfirmSubscriptionResult>"
                                b"</ConfirmSubscriptionResponse>")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = self.pki.server_context().wrap_socket(self.server.socket,
                                                                   server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Serve as new: the usual answers, nothing recorded."""
        self.answers.clear()
        self.requests.clear()
        self.confirmed.clear()
        self.certificate = None

    def fetcher(self) -> Callable[[str, int], bytes]:
        from newsletter.providers.ses.sns import https_fetcher

        return https_fetcher(f"127.0.0.1:{self.port}", context=self.pki.client_context())


def sns_time(when: dt.datetime | None = None) -> str:
    """A time as SNS writes it: 2026-12-05T20:01:02.345Z."""
    when = when or dt.datetime.now(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Signer:
    """Signs SNS documents with the test PKI's signing key."""

    pki: TestPki
    topic: str = TOPIC
    version: str = "1"

    def cert_url(self, topic: str | None = None) -> str:
        region = (topic or self.topic).split(":")[3]
        return f"https://sns.{region}.amazonaws.com{CERT_PATH}"

    def sign(self, document: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        """`document` with SignatureVersion, SigningCertURL (unless given) and Signature."""
        version = version or self.version
        names = NOTIFICATION_FIELDS if document["Type"] == "Notification" \
            else CONFIRMATION_FIELDS
        text = "".join(f"{name}\n{document[name]}\n" for name in names if name in document)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        signature = self.pki.signing_key.sign(text.encode("utf-8"), padding.PKCS1v15(), digest)
        document = {**document, "SignatureVersion": version}
        document.setdefault("SigningCertURL", self.cert_url(document["TopicArn"]))
        document["Signature"] = base64.b64encode(signature).decode()
        return document

    def notification(self, record: dict[str, Any] | str, *, topic: str | None = None,
                     at: dt.datetime | None = None, message_id: str | None = None,
                     subject: str | None = None, version: str | None = None) -> dict[str, Any]:
        """A signed Notification carrying `record` (an SES event record)."""
        topic = topic or self.topic
        document = {
            "Type": "Notification", "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": record if isinstance(record, str) else json.dumps(record),
            "Timestamp": sns_time(at),
            "UnsubscribeURL": f"https://sns.{topic.split(':')[3]}.amazonaws.com/?Action="
                              f"Unsubscribe&SubscriptionArn={topic}:{uuid.uuid4()}",
        }
        if subject is not None:
            document["Subject"] = subject
        return self.sign(document, version)

    def confirmation(self, *, topic: str | None = None, kind: str = "SubscriptionConfirmation",
                     subscribe_url: str | None = None, at: dt.datetime | None = None,
                     version: str | None = None) -> dict[str, Any]:
        topic = topic or self.topic
        token = uuid.uuid4().hex * 2
        host = f"sns.{topic.split(':')[3]}.amazonaws.com"
        url = subscribe_url or (f"https://{host}/?Action=ConfirmSubscription&TopicArn="
                                f"{quote(topic, safe=':')}&Token={token}")
        return self.sign({
            "Type": kind, "MessageId": str(uuid.uuid4()), "Token": token, "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm the "
                       "subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": url, "Timestamp": sns_time(at)}, version)


def body(document: dict[str, Any]) -> bytes:
    """A document as SNS posts it (indented JSON, as SNS writes it)."""
    return json.dumps(document, indent=2).encode()


def headers(document: dict[str, Any]) -> dict[str, str]:
    """The headers SNS sends with a document."""
    return {"Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": document["Type"],
            "x-amz-sns-message-id": document["MessageId"],
            "x-amz-sns-topic-arn": document["TopicArn"],
            "User-Agent": "Amazon Simple Notification Service Agent"}


@pytest.fixture(scope="module")
def sns_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def sns_stand_in(sns_pki: TestPki) -> Iterator[FakeSnsHost]:
    with FakeSnsHost(sns_pki) as stand_in:
        yield stand_in


@pytest.fixture()
def sns_host(sns_stand_in: FakeSnsHost) -> FakeSnsHost:
    """The stand-in for the SNS hosts, as new."""
    sns_stand_in.reset()
    return sns_stand_in


@pytest.fixture(scope="module")
def sns_signer(sns_pki: TestPki) -> Signer:
    return Signer(sns_pki)
