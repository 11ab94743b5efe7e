"""`send --editions`: each subscriber gets exactly one edition, chosen by `language`."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from sqlalchemy import select

from newsletter.db.ledger_tables import sends
from tests.dispatch.conftest import SLUG, Pub, add_people

ARABIC = f"{SLUG}-ar"


def _received(outbox: Path) -> dict[str, list[str]]:
    """address -> the Content-Language-free evidence: the <html lang> of each message."""
    from lxml import html as lxml_html

    found: dict[str, list[str]] = {}
    for path in sorted(outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(("html",)).get_content()
        lang = lxml_html.document_fromstring(body).get("lang")
        found.setdefault(msg["To"].addresses[0].addr_spec, []).append(lang)
    return found


def test_each_reader_gets_one_edition_in_their_language(pub: Pub) -> None:
    arabic = add_people(pub.engine, 3, start=0, attributes={"language": "ar"})
    regional = add_people(pub.engine, 1, start=3, attributes={"language": "AR-eg"})
    english = add_people(pub.engine, 2, start=10, attributes={"language": "en"})
    nothing = add_people(pub.engine, 2, start=20, attributes={"role": "press"})
    other = add_people(pub.engine, 1, start=30, attributes={"language": "sw"})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert result.exit_code == 0, result.output
    got = _received(pub.outbox)
    assert set(got) == set(arabic + regional + english + nothing + other)
    assert all(len(langs) == 1 for langs in got.values()), got
    for person in arabic + regional:
        assert got[person] == ["ar"]
    for person in english + nothing + other:
        assert got[person] == ["en"]
    with pub.engine.connect() as conn:
        issues = dict(conn.execute(select(sends.c.issue, sends.c.total)).all())
    assert issues == {SLUG: 5, ARABIC: 4}

    # a second --editions run without --again sends nothing more
    result = pub.cli("send", ARABIC, "--segment", "everyone", "--editions", "--yes")
    assert result.exit_code == 2
    assert "already sent" in result.output
    assert _received(pub.outbox) == got


def test_readers_of_one_edition_never_get_the_other(pub: Pub) -> None:
    """An edition sent on its own first still counts: --editions leaves its readers out, and
    sends each edition to those who joined since."""
    first = add_people(pub.engine, 3, attributes={"language": "en"})
    result = pub.cli("send", ARABIC, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    later = add_people(pub.engine, 2, start=10) + add_people(
        pub.engine, 1, start=20, attributes={"language": "ar"})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert result.exit_code == 0, result.output
    assert "3 already reached by this issue or one of its editions" in result.output
    got = _received(pub.outbox)
    assert set(got) == set(first + later)
    assert all(len(langs) == 1 for langs in got.values()), got
    assert [got[p][0] for p in first] == ["ar"] * 3  # the Arabic edition reached them first
    assert [got[p][0] for p in later] == ["en", "en", "ar"]
    again = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert again.exit_code == 2 and f"{ARABIC} (ar) was already sent" in again.output


def test_editions_dry_run_sends_nothing(pub: Pub) -> None:
    add_people(pub.engine, 2, attributes={"language": "ar"})
    add_people(pub.engine, 2, start=5)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count("dry run: 2 messages") == 2
    assert not list(pub.outbox.rglob("*.eml")) if pub.outbox.exists() else True
