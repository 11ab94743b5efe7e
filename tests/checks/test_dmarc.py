"""The DMARC check against a DNS server started by the tests (never the internet)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.checks import dmarc
from newsletter.checks.dmarc import check_dmarc
from newsletter.checks.model import ERROR, Context
from newsletter.cli import main
from newsletter.compose.publication import Publication
from newsletter.compose.schema import BouncesConfig
from newsletter.core.settings import Settings
from tests.checks.dns_server import LocalDns
from tests.conftest import sample_build

SENDGRID = "s1.domainkey.u1234.wl.sendgrid.net"
BOUNCES = BouncesConfig(imap_url="imaps://bounces@imap.example.org/INBOX",
                        return_path="bounces@news.example.org")


@pytest.fixture(scope="module")
def dns_server() -> Iterator[LocalDns]:
    server = LocalDns()
    yield server
    server.stop()


@pytest.fixture()
def local_dns(dns_server: LocalDns) -> LocalDns:
    """The module's DNS server with an empty zone for this test."""
    dns_server.zone.records, dns_server.zone.asked = {}, []
    return dns_server


@pytest.fixture(scope="module")
def built():
    return sample_build()


def run(built, dns: LocalDns | str, *, transport: str = "smtp", sender: str | None = None,
        bounces: BouncesConfig | None = BOUNCES, online: bool = False):
    """check_dmarc on the sample issue with these settings: (findings, notes)."""
    base, build = built
    config = base.config.model_copy(update={"bounces": bounces})
    if sender:
        config = config.model_copy(update={
            "sender": config.sender.model_copy(update={"email": sender})})
    pub = Publication(base.root, config)
    server = dns if isinstance(dns, str) else dns.address
    pub.__dict__["settings"] = Settings.from_env(base.root, env={
        "NEWSLETTER_TRANSPORT": transport, "SMTP_URL": "smtp://relay.example.org:587",
        "NEWSLETTER_DNS_SERVER": server})
    ctx = Context(pub, build, online=online)
    return check_dmarc(ctx), ctx.extra.get("dns_notes", [])


def test_no_record_or_p_none_passes(built, local_dns: LocalDns) -> None:
    assert run(built, local_dns) == ([], [])
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=none")]}
    assert run(built, local_dns)[0] == []


def test_smtp_aligns_through_the_envelope_domains_spf(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {
        "_dmarc.example.org": [("TXT", "v=DMARC1; p=reject; rua=mailto:d@example.org")],
        "news.example.org": [("TXT", "v=spf1 include:_spf.relay.example.org -all")],
    }
    assert run(built, local_dns)[0] == []
    findings, notes = run(built, local_dns, online=True)
    assert findings == []
    assert "DMARC example.org: p=reject, rua=mailto:d@example.org (at _dmarc.example.org)" \
        in notes
    assert "SPF news.example.org (envelope domain): v=spf1 include:_spf.relay.example.org " \
           "-all" in notes
    assert any(n.startswith("sending path smtp via relay.example.org: SPF of the envelope "
                            "domain news.example.org") for n in notes)


def test_smtp_without_spf_or_dkim_fails(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=quarantine")]}
    (finding,), _ = run(built, local_dns)
    assert finding.severity == ERROR and finding.check == "dns.dmarc"
    assert finding.message == (
        "example.org publishes DMARC p=quarantine, and mail sent smtp via relay.example.org "
        "cannot pass it: the envelope domain news.example.org has no SPF record and no aligned "
        "DKIM key is published; receivers would quarantine it")
    assert finding.file and finding.file.endswith("newsletter.yaml") and finding.line == 4


def test_strict_spf_alignment_needs_the_same_domain(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {
        "_dmarc.example.org": [("TXT", "v=DMARC1; p=reject; aspf=s")],
        "news.example.org": [("TXT", "v=spf1 ip4:192.0.2.25 -all")],
        "example.org": [("TXT", "v=spf1 -all")],
    }
    (finding,), _ = run(built, local_dns)
    assert "news.example.org is not aligned with example.org" in finding.message
    assert run(built, local_dns, bounces=None)[0] == []  # the From address as envelope


def test_smtp_aligns_through_a_relay_dkim_key(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {
        "_dmarc.example.org": [("TXT", "v=DMARC1; p=reject")],
        "selector1._domainkey.example.org": [
            ("CNAME", "selector1-example-org._domainkey.example.onmicrosoft.example.org")],
    }
    findings, notes = run(built, local_dns, online=True)
    assert findings == []
    assert any("DKIM (selector1._domainkey.example.org -> selector1-example-org" in n
               for n in notes)


def test_sendgrid_needs_domain_authentication(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=reject")],
                              "news.example.org": [("TXT", "v=spf1 -all")]}
    (finding,), _ = run(built, local_dns, transport="sendgrid")
    assert "no SendGrid domain authentication" in finding.message
    assert "authenticate example.org in SendGrid" in finding.fix
    local_dns.zone.records.update({
        "s1._domainkey.example.org": [("CNAME", SENDGRID)],
        "s2._domainkey.example.org": [("CNAME", SENDGRID.replace("s1", "s2"))]})
    assert run(built, local_dns, transport="sendgrid")[0] == []


def test_a_subdomain_sender_gets_the_subdomain_policy(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=reject; sp=none")]}
    assert run(built, local_dns, sender="weekly@letters.example.org")[0] == []
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=none; sp=reject")]}
    (finding,), _ = run(built, local_dns, sender="weekly@letters.example.org")
    assert finding.message.startswith("letters.example.org publishes DMARC p=reject")
    assert ("_dmarc.letters.example.org", "TXT") in local_dns.zone.asked  # its own name first


def test_the_outbox_is_not_judged(built, local_dns: LocalDns) -> None:
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=reject")]}
    assert run(built, local_dns, transport="outbox") == ([], [])


def test_offline_and_off_skip_with_a_note(built, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dmarc, "LIFETIME", 0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # takes, never answers
        silent.bind(("127.0.0.1", 0))
        findings, notes = run(built, f"127.0.0.1:{silent.getsockname()[1]}")
    assert findings == [] and len(notes) == 1
    assert notes[0].startswith("DMARC not checked: no DNS resolver answered")
    assert run(built, "off") == ([], ["DMARC not checked: DNS checks are off "
                                      "(NEWSLETTER_DNS_SERVER=off)"])


@pytest.mark.slow
def test_newsletter_check_fails_on_it(warm_publication: Path, local_dns: LocalDns) -> None:
    publication = warm_publication
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text() + "bounces: {imap_url: 'imaps://b@imap.example.org/"
                      "INBOX', return_path: bounces@news.example.org}\n")
    local_dns.zone.records = {"_dmarc.example.org": [("TXT", "v=DMARC1; p=reject")]}
    env = {"NEWSLETTER_DNS_SERVER": local_dns.address, "NEWSLETTER_TRANSPORT": "smtp",
           "SMTP_URL": "smtp://relay.example.org:587"}
    result = CliRunner().invoke(main, ["-C", str(publication), "check", "2026-11-24",
                                       "--no-spam"], env=env)
    assert result.exit_code == 1, result.output
    assert "newsletter.yaml:4: error: example.org publishes DMARC p=reject" in result.output
    assert "[dns.dmarc]" in result.output
    local_dns.zone.records["news.example.org"] = [("TXT", "v=spf1 a -all")]
    online = CliRunner().invoke(main, ["-C", str(publication), "check", "2026-11-24",
                                       "--no-spam", "--online", "--timeout", "1"], env=env)
    assert "note: DMARC example.org: p=reject (at _dmarc.example.org)" in online.output
    assert "note: SPF news.example.org (envelope domain): v=spf1 a -all" in online.output
    assert "dns.dmarc" not in online.output
