"""Amazon SNS notifications over HTTP(S): signatures, certificates, subscription confirmation.

SES publishes a configuration set's events to an SNS topic; SNS posts each one to our
endpoint as a JSON document. Nothing in it is trusted before `SnsVerifier.verify` has checked,
in this order (AWS, "Verifying the signatures of Amazon SNS messages"):

1. `Type` is Notification, SubscriptionConfirmation or UnsubscribeConfirmation, and every
   field the signature covers is a string;
2. `TopicArn` is one of the topics newsletter.yaml names (`ses.topic_arns`): a message from
   any other topic is refused before anything is fetched;
3. `SigningCertURL` is https on the SNS host of the topic's own region
   (`sns.<region>.amazonaws.com`, `.amazonaws.com.cn` in China), a `.pem` path, no user,
   no other port; the certificate is fetched from there once (over verified TLS) and kept,
   and must be in its validity period and hold an RSA key;
4. `Signature` (base64) is that key's PKCS #1 v1.5 signature, with SHA-1 for
   `SignatureVersion` 1 and SHA-256 for 2, of the string to sign: for each of the message
   type's fields present, in byte order, the field's name, a newline, its value, a newline
   (Notification: Message, MessageId, Subject when present, Timestamp, TopicArn, Type;
   the two confirmations: Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn,
   Type);
5. `Timestamp` is at most MAX_AGE old (SNS retries an HTTP(S) delivery for at most an hour, with
   the message's first time and id): an older message, however genuine, is refused, so a
   message id only has to be remembered that long to refuse a replay (the caller does that).

`confirm` then visits a verified SubscriptionConfirmation's `SubscribeURL`, itself checked to
be https on the topic's SNS host with `Action=ConfirmSubscription` for that topic.

The certificate and the confirmation are fetched over TLS verified against the system's trust
store, from the URL's host. Tests hand `SnsVerifier` a fetcher of their own
(`https_fetcher(connect_to=..., context=...)`: connect to a local stand-in whose certificate
for the SNS host is issued by a test CA that context trusts; the URL, its host check, the TLS
server name and the verification stay the same). Nothing in the settings or the environment
changes where a certificate comes from.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from newsletter.compose.schema import SNS_TOPIC_ARN

TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
OPTIONAL_FIELDS = frozenset({"Subject"})
MAX_ID = 100  # webhook_tokens.token
MAX_CERTIFICATE_BYTES = 64 * 1024
#: a message older than this is refused (SNS stops retrying after an hour; clocks drift)
MAX_AGE = dt.timedelta(hours=1, minutes=15)
#: a message from further ahead than this is refused too
MAX_AHEAD = dt.timedelta(minutes=15)
MAX_CONFIRM_BYTES = 256 * 1024
CACHE_SIZE = 32
TIMEOUT_S = 10.0


class BadMessage(ValueError):
    """The document is not a genuine SNS message for one of our topics (answer 403/400)."""


class Unavailable(Exception):
    """A certificate or a confirmation could not be fetched now (answer 503: SNS retries)."""


def parse_message(body: bytes) -> dict[str, Any]:
    """The SNS document in `body`; BadMessage when it is not one."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadMessage("the body is not JSON") from None
    if not isinstance(message, dict):
        raise BadMessage("the body is not a JSON object")
    kind = message.get("Type")
    if kind not in TYPES:
        raise BadMessage(f"unknown SNS message type {str(kind)[:40]!r}")
    for name in SIGNED_FIELDS[kind]:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise BadMessage(f"the SNS message has no {name}")
    for name in ("Signature", "SignatureVersion", "SigningCertURL"):
        if not isinstance(message.get(name), str):
            raise BadMessage(f"the SNS message has no {name}")
    if not 0 < len(message["MessageId"]) <= MAX_ID:
        raise BadMessage("the SNS message's MessageId is empty or too long")
    return message


def sent_at(message: dict[str, Any]) -> dt.datetime:
    """The message's `Timestamp` (ISO 8601, UTC); BadMessage when it is not one."""
    try:
        when = dt.datetime.fromisoformat(message["Timestamp"].replace("Z", "+00:00"))
    except ValueError:
        raise BadMessage("the SNS message's Timestamp is not a time") from None
    if when.tzinfo is None:
        raise BadMessage("the SNS message's Timestamp has no time zone")
    return when


def string_to_sign(message: dict[str, Any]) -> bytes:
    """AWS's string to sign for `message` (its type's fields, in byte order)."""
    parts = []
    for name in sorted(SIGNED_FIELDS[message["Type"]], key=lambda n: n.encode()):
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


def sns_host(topic_arn: str) -> str:
    """The SNS host of the topic's region: sns.<region>.amazonaws.com(.cn)."""
    match = SNS_TOPIC_ARN.fullmatch(topic_arn)
    if not match:
        raise BadMessage(f"{topic_arn[:100]!r} is not an SNS topic ARN")
    suffix = ".amazonaws.com.cn" if match.group(1) == "-cn" else ".amazonaws.com"
    return f"sns.{match.group(2)}{suffix}"


def check_url(url: str, host: str, what: str) -> Any:
    """`url` split, when it is https://<host>/... with no user and the default port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadMessage(f"{what} is not a URL") from None
    if parts.scheme != "https" or parts.hostname != host or parts.username is not None \
            or parts.password is not None or port not in (None, 443) \
            or parts.netloc.lower() not in (host, f"{host}:443"):
        raise BadMessage(f"{what} is not an https URL on {host}")
    return parts


#: fetch(url, limit): the body of a 200 answer, at most `limit` bytes; Unavailable otherwise
Fetch = Callable[[str, int], bytes]


def https_fetcher(connect_to: str | None = None, *, timeout: float = TIMEOUT_S,
                  context: ssl.SSLContext | None = None) -> Fetch:
    """GET an https URL (TLS verified against the default trust store) and return the body
    of a 200 answer; Unavailable otherwise. `connect_to` ("HOST:PORT") is where to connect
    instead of the URL's host (the URL, server name and verification stay)."""
    tls = context or ssl.create_default_context()
    address: tuple[str, int] | None = None
    if connect_to:
        host, _, port = connect_to.rpartition(":")
        address = (host.strip("[]"), int(port))

    class Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            target = address or (self.host, self.port)
            sock = socket.create_connection(target, self.timeout)
            self.sock = tls.wrap_socket(sock, server_hostname=self.host)

    def fetch(url: str, limit: int) -> bytes:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection = Connection(parts.hostname or "", parts.port or 443, timeout=timeout,
                                context=tls)
        try:
            connection.request("GET", path, headers={"User-Agent": "newsletter"})
            answer = connection.getresponse()
            body = answer.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(f"cannot fetch {url}: {exc}") from None
        finally:
            connection.close()
        if answer.status != 200:
            raise Unavailable(f"{url} answered {answer.status}")
        if len(body) > limit:
            raise Unavailable(f"{url} answered more than {limit} bytes")
        return body

    return fetch


class SnsVerifier:
    """Checks SNS messages for the topics in `topics` (see the module's docstring)."""

    def __init__(self, topics: Iterable[str], fetch: Fetch | None = None, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.topics = frozenset(topics)
        self.fetch = fetch or https_fetcher()
        self.clock = clock
        self._keys: dict[str, Any] = {}  # certificate URL -> (public key, not after)
        self._lock = threading.Lock()
        self._fetching = threading.Lock()  # one certificate fetch at a time
        self.fetched = 0  # certificates fetched (each URL once while it stays valid)

    def verify(self, message: dict[str, Any]) -> None:
        """Return when `message` (from parse_message) is genuine and for one of our topics;
        BadMessage when not, Unavailable when its certificate cannot be fetched now."""
        topic = message["TopicArn"]
        if topic not in self.topics:
            raise BadMessage("the message is for a topic this publication does not name "
                             "(ses.topic_arns)")
        now = self.clock()
        when = sent_at(message)
        if not now - MAX_AGE <= when <= now + MAX_AHEAD:
            raise BadMessage("the message's Timestamp is outside the accepted window "
                             "(a replay, or a clock far off)")
        version = message["SignatureVersion"]
        if version not in ("1", "2"):
            raise BadMessage(f"unknown SignatureVersion {version[:10]!r}")
        url = message["SigningCertURL"]
        parts = check_url(url, sns_host(topic), "SigningCertURL")
        if not parts.path.endswith(".pem") or parts.query or parts.fragment:
            raise BadMessage("SigningCertURL is not a certificate (.pem) URL")
        key = self._key(url)
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise BadMessage("the signature is not base64") from None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - AWS's v1
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), digest)
        except InvalidSignature:
            raise BadMessage("the signature does not match") from None

    def _cached(self, url: str, now: dt.datetime) -> Any:
        with self._lock:
            found = self._keys.get(url)
        return found[0] if found is not None and now <= found[1] else None

    def _key(self, url: str) -> Any:
        """The public key of the certificate at `url`: kept, or fetched once (requests that
        find it missing at the same moment wait for the one fetch)."""
        now = self.clock()
        key = self._cached(url, now)
        if key is not None:
            return key
        with self._fetching:
            key = self._cached(url, now)
            if key is None:
                key, not_after = self._load(url, now)
                with self._lock:
                    if len(self._keys) >= CACHE_SIZE:
                        self._keys.pop(next(iter(self._keys)))
                    self._keys[url] = (key, not_after)
                    self.fetched += 1
        return key

    def _load(self, url: str, now: dt.datetime) -> tuple[Any, dt.datetime]:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa

        body = self.fetch(url, MAX_CERTIFICATE_BYTES)
        try:
            certificate = x509.load_pem_x509_certificate(body)
        except ValueError:
            raise BadMessage("SigningCertURL does not hold a PEM certificate") from None
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise BadMessage("the signing certificate is outside its validity period")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise BadMessage("the signing certificate does not hold an RSA key")
        return key, certificate.not_valid_after_utc

    def confirm(self, message: dict[str, Any]) -> str:
        """Visit a verified SubscriptionConfirmation's SubscribeURL; returns the topic."""
        topic = message["TopicArn"]
        parts = check_url(message["SubscribeURL"], sns_host(topic), "SubscribeURL")
        query = parse_qs(parts.query)
        if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [topic]:
            raise BadMessage("SubscribeURL does not confirm a subscription to this topic")
        self.fetch(message["SubscribeURL"], MAX_CONFIRM_BYTES)
        return topic
