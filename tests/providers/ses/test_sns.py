"""SNS message verification (newsletter.providers.ses.sns) against a local stand-in for the SNS
hosts: a real TLS server whose certificate for sns.<region>.amazonaws.com comes from a test CA,
and documents signed by tests.fake_sns with a string to sign built there on its own."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.providers.ses.sns import (
    MAX_AGE,
    BadMessage,
    SnsVerifier,
    Unavailable,
    https_fetcher,
    parse_message,
)
from tests.conftest import examples
from tests.fake_sns import (  # noqa: F401  (fixtures)
    CERT_PATH,
    TOPIC,
    FakeSnsHost,
    Signer,
    TestPki,
    _certificate,
    _pem,
    sns_host,
    sns_pki,
    sns_signer,
    sns_stand_in,
)
from tests.ses_records import record

OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-elses"
EU_TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-events"


@pytest.fixture()
def verifier(host: FakeSnsHost) -> SnsVerifier:
    return SnsVerifier([TOPIC, EU_TOPIC], host.fetcher())


@pytest.fixture()
def host(sns_host: FakeSnsHost) -> FakeSnsHost:  # noqa: F811
    return sns_host


@pytest.fixture()
def pki(sns_pki: TestPki) -> TestPki:  # noqa: F811
    return sns_pki


@pytest.fixture()
def signer(sns_signer: Signer) -> Signer:  # noqa: F811
    return sns_signer


def _refused(verifier: SnsVerifier, document: dict, words: str) -> None:
    with pytest.raises(BadMessage, match=words):
        verifier.verify(parse_message(json.dumps(document).encode()))


@pytest.mark.parametrize("version", ["1", "2"])
def test_both_signature_versions_of_each_message_type_verify(verifier: SnsVerifier,
                                                             signer: Signer,
                                                             host: FakeSnsHost,
                                                             version: str) -> None:
    documents = [
        signer.notification(record("Bounce", "reader@example.com"), version=version),
        signer.notification(record("Open", "reader@example.com"), version=version,
                            subject="Amazon SES Email Event Notification"),
        signer.notification(record("Delivery", "r@example.com"), topic=EU_TOPIC,
                            version=version),
        signer.confirmation(version=version),
        signer.confirmation(kind="UnsubscribeConfirmation", version=version),
    ]
    for document in documents:
        verifier.verify(parse_message(json.dumps(document, indent=2).encode()))
    assert host.requests[CERT_PATH] == 2  # once per SNS host (region), then kept
    assert verifier.fetched == 2


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300), subject=st.none() | st.text(min_size=1, max_size=100),
       version=st.sampled_from(["1", "2"]), field=st.sampled_from(
           ["Message", "MessageId", "Timestamp", "TopicArn", "Subject"]))
def test_any_message_verifies_and_any_change_to_a_signed_field_is_caught(
        verifier: SnsVerifier, signer: Signer, text: str, subject: str | None, version: str,
        field: str) -> None:
    document = signer.notification(text, subject=subject, version=version)
    verifier.verify(parse_message(json.dumps(document).encode()))  # escapes, newlines, any text
    changed = dict(document)
    if field == "Subject" and subject is None:
        changed["Subject"] = "added"
    elif field == "Timestamp":
        changed["Timestamp"] = document["Timestamp"].replace("Z", "1Z")
    elif field == "TopicArn":
        changed["TopicArn"] = EU_TOPIC  # ours too, and its SNS host is another
        changed["SigningCertURL"] = signer.cert_url(EU_TOPIC)
    else:
        changed[field] = changed[field] + "x"
    with pytest.raises(BadMessage):
        verifier.verify(parse_message(json.dumps(changed).encode()))


def test_a_topic_we_do_not_name_is_refused_before_anything_is_fetched(
        verifier: SnsVerifier, signer: Signer, host: FakeSnsHost) -> None:
    _refused(verifier, signer.notification("{}", topic=OTHER_TOPIC), "does not name")
    _refused(verifier, signer.confirmation(topic=OTHER_TOPIC), "does not name")
    assert not host.requests


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com" + CERT_PATH,
    "https://sns.eu-west-1.amazonaws.com" + CERT_PATH,  # another region's host
    "https://sns.us-east-1.amazonaws.com.example.org" + CERT_PATH,
    "https://example.org/sns.us-east-1.amazonaws.com" + CERT_PATH,
    "https://sns.us-east-1.amazonaws.com@example.org" + CERT_PATH,
    "https://user@sns.us-east-1.amazonaws.com" + CERT_PATH,
    "https://sns.us-east-1.amazonaws.com:8443" + CERT_PATH,
    "https://sns.us-east-1.amazonaws.com:443x" + CERT_PATH,
    "https://sns.us-east-1.amazonaws.com\\@example.org" + CERT_PATH,
    "https://SNS.us-east-1.amazonaws.com.\u0435xample.org" + CERT_PATH,
    "https://sns.us-east-1.amazonaws.com/certificate.txt",
    "https://sns.us-east-1.amazonaws.com" + CERT_PATH + "?x=1",
    "https://sns.us-east-1.amazonaws.com" + CERT_PATH + "#x",
    "https://s3.amazonaws.com/bucket/SimpleNotificationService-1.pem",
    "//sns.us-east-1.amazonaws.com" + CERT_PATH,
    "",
])
def test_a_certificate_url_off_the_topics_sns_host_is_refused_unfetched(
        verifier: SnsVerifier, signer: Signer, host: FakeSnsHost, url: str) -> None:
    document = signer.sign({**signer.notification("{}"), "SigningCertURL": url})
    _refused(verifier, document, "SigningCertURL")
    assert not host.requests


def test_a_certificate_from_a_server_tls_does_not_trust_is_not_used(
        pki: TestPki, signer: Signer, host: FakeSnsHost) -> None:
    """The system's trust store (no test CA): the stand-in's TLS certificate is refused."""
    verifier = SnsVerifier([TOPIC], https_fetcher(f"127.0.0.1:{host.port}"))
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
        verifier.verify(signer.notification("{}"))
    assert verifier.fetched == 0


def test_a_certificate_that_cannot_be_fetched_now_is_unavailable_then_fetched(
        verifier: SnsVerifier, signer: Signer, host: FakeSnsHost) -> None:
    host.answers[CERT_PATH] = (503, b"busy")
    with pytest.raises(Unavailable, match="answered 503"):
        verifier.verify(signer.notification("{}"))
    del host.answers[CERT_PATH]
    verifier.verify(signer.notification("{}"))  # SNS retries: now it works


@pytest.mark.parametrize("what", ["not a pem", "expired", "not yet valid", "an ec key",
                                  "another key"])
def test_a_bad_signing_certificate_is_refused(pki: TestPki, signer: Signer,
                                              host: FakeSnsHost, what: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    now = dt.datetime.now(dt.UTC)
    if what == "not a pem":
        host.certificate = b"<html>hello</html>"
    elif what == "an ec key":
        key = ec.generate_private_key(ec.SECP256R1())
        host.certificate = _pem(_certificate("sns.amazonaws.com", key, "CA", pki.ca_key))
    elif what == "another key":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        host.certificate = _pem(_certificate("sns.amazonaws.com", key, "CA", pki.ca_key))
    else:
        start = now - dt.timedelta(days=40) if what == "expired" else now + dt.timedelta(days=1)
        host.certificate = _pem(_certificate("sns.amazonaws.com", pki.signing_key, "CA",
                                             pki.ca_key, start=start))
    verifier = SnsVerifier([TOPIC], host.fetcher())
    with pytest.raises(BadMessage):
        verifier.verify(signer.notification("{}"))


def test_stale_and_future_messages_are_refused(verifier: SnsVerifier, signer: Signer) -> None:
    now = dt.datetime.now(dt.UTC)
    verifier.verify(signer.notification("{}", at=now - MAX_AGE + dt.timedelta(minutes=1)))
    _refused(verifier, signer.notification("{}", at=now - MAX_AGE - dt.timedelta(minutes=1)),
             "outside the accepted window")
    _refused(verifier, signer.notification("{}", at=now + dt.timedelta(hours=1)),
             "outside the accepted window")
    _refused(verifier, {**signer.notification("{}"), "Timestamp": "yesterday"}, "not a time")


def test_signature_versions_and_encodings_other_than_awss_are_refused(
        verifier: SnsVerifier, signer: Signer) -> None:
    good = signer.notification("{}")
    _refused(verifier, {**good, "SignatureVersion": "3"}, "unknown SignatureVersion")
    _refused(verifier, signer.notification("{}", version="2") | {"SignatureVersion": "1"},
             "does not match")  # a SHA-256 signature read as SHA-1
    _refused(verifier, {**good, "Signature": "not base64!"}, "not base64")
    _refused(verifier, {**good, "Signature": ""}, "does not match")


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b"null", b'"Notification"', b"{}",
    b'{"Type": "Notification"}', b'{"Type": ["Notification"]}', b'{"Type": {"a": 1}}',
    b'{"Type": "SubscriptionConfirmation", "Message": "m"}',
    b"[" * 100_000, b"\xff\xfe{}",
])
def test_hostile_bodies_are_not_sns_messages(body: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_message(body)


def test_fields_of_the_wrong_type_are_refused(signer: Signer) -> None:
    good = signer.notification("{}")
    for name, value in [("Message", {"a": 1}), ("MessageId", 7), ("Signature", None),
                        ("SigningCertURL", ["x"]), ("MessageId", "x" * 101),
                        ("Subject", 3)]:
        with pytest.raises(BadMessage):
            parse_message(json.dumps({**good, name: value}).encode())


def test_the_subscription_is_confirmed_only_on_the_topics_sns_host(
        verifier: SnsVerifier, signer: Signer, host: FakeSnsHost) -> None:
    good = signer.confirmation()
    verifier.verify(good)
    assert verifier.confirm(good) == TOPIC
    [visit] = host.confirmed
    assert (visit["TopicArn"], visit["Token"]) == (TOPIC, good["Token"])
    assert visit["Host"].startswith("sns.us-east-1.amazonaws.com")
    for url in ["https://example.org/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
                "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
                + TOPIC,
                "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn=" + TOPIC,
                "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
                + OTHER_TOPIC,
                "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
                + TOPIC]:
        document = signer.confirmation(subscribe_url=url)
        verifier.verify(document)  # genuinely signed, but not a URL we visit
        with pytest.raises(BadMessage, match="SubscribeURL"):
            verifier.confirm(document)
    assert len(host.confirmed) == 1

