"""Compliance: unsubscribe link and headers, postal address, From and Reply-To."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from newsletter.checks import ERROR, WARNING, run
from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from tests.checks.conftest import check, edit, of, own_template
from tests.conftest import SAMPLE_SLUG

UNSUBSCRIBE_HTML = ' &middot; <a href="{{ recipient("unsubscribe_url") }}">{{ t.unsubscribe }}</a>'


def test_template_without_unsubscribe_link_fails(publication: Path) -> None:
    template = own_template(publication)
    edit(template / "email.mjml.j2", UNSUBSCRIBE_HTML, "")
    edit(template / "email.txt.j2", '{{ t.unsubscribe }}: {{ recipient("unsubscribe_url") }}', "")
    report = check(publication)
    assert [f.severity for f in of(report, "compliance.unsubscribe-link")] == [ERROR]
    assert [f.part for f in of(report, "compliance.unsubscribe-text")] == ["text"]


def test_missing_postal_address_in_the_footer_fails(publication: Path) -> None:
    template = own_template(publication)
    edit(template / "email.mjml.j2", " &middot; {{ pub.address }}", "")
    findings = of(check(publication), "compliance.postal-address")
    assert [(f.severity, f.part) for f in findings] == [(ERROR, "html")]


def test_address_without_a_number_warns(publication: Path) -> None:
    edit(
        publication / "newsletter.yaml",
        "address: 1 Example Street, Suite 400, Washington, DC 20000, USA",
        "address: Somewhere in Washington",
    )
    [finding] = of(check(publication), "compliance.postal-address")
    assert finding.severity == WARNING
    assert finding.file.endswith("newsletter.yaml") and finding.line == 6


def test_missing_reply_to_warns(publication: Path) -> None:
    edit(publication / "newsletter.yaml", "reply_to: info@example.org\n", "")
    [finding] = of(check(publication), "compliance.reply-to")
    assert finding.severity == WARNING


def test_message_without_unsubscribe_headers_or_valid_from_fails(publication: Path) -> None:
    # The tool's composer always writes these headers and the schema rejects bad addresses,
    # so the broken message is made by editing the built sample, as another sender might.
    pub = Publication.load(publication)
    build = build_issue(pub, SAMPLE_SLUG)
    head, sep, body = build.message.partition(
        b"\r\n\r\n" if b"\r\n\r\n" in build.message else b"\n\n"
    )
    lines = [
        line
        for line in head.splitlines()
        if not line.startswith((b"List-Unsubscribe", b"Reply-To"))
    ]
    lines = [
        b"From: Example Institute <newsletter@@example>" if line.startswith(b"From:") else line
        for line in lines
    ]
    broken = dataclasses.replace(build, message=b"\n".join(lines) + sep + body)
    report = run(pub, broken, spam=False)
    assert [f.severity for f in of(report, "compliance.list-unsubscribe")] == [ERROR]
    assert [f.severity for f in of(report, "compliance.one-click")] == [ERROR]
    assert [f.severity for f in of(report, "compliance.from")] == [ERROR]
    assert [f.severity for f in of(report, "compliance.reply-to")] == [WARNING]
