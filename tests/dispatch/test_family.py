"""One answer to "has this person had this issue?" on every path of an issue family (an issue
and its `translation_of` editions): plain sends, `--editions`, a killed and cancelled send,
`--retry-failed`. Each test is a scenario of issue 22 that mailed someone twice before."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients, sends
from tests.dispatch.conftest import SLUG, Pub, add_people, family_mail, kill_when, ledger_states

ARABIC = f"{SLUG}-ar"


def _smtp(pub: Pub, *args: str):
    return pub.cli("send", *args, "--transport", "smtp", "--yes")


def test_editions_then_a_plain_send_mail_each_person_once(pub: Pub) -> None:
    arabic = add_people(pub.engine, 3, attributes={"language": "ar"}, tags=("cyber",))
    english = add_people(pub.engine, 3, start=10, attributes={"language": "en"},
                         tags=("cyber",))
    others = add_people(pub.engine, 2, start=20)
    editions = pub.cli("send", SLUG, "--segment", "cyber", "--editions", "--yes")
    assert editions.exit_code == 0, editions.output
    plain = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert plain.exit_code == 0, plain.output
    got = family_mail(pub)
    assert got == {**{p: ["ar"] for p in arabic}, **{p: ["en"] for p in english + others}}
    assert "6 already reached by this issue or one of its editions" in plain.output


@pytest.mark.slow
def test_a_killed_then_cancelled_send_counts_who_it_reached(pub: Pub) -> None:
    """kill -9 in the middle of a batch, `send cancel`, then `send --editions`: whoever the
    killed send's files reached is reached (their rows were in flight), nobody twice."""
    people = add_people(pub.engine, 1500) + add_people(
        pub.engine, 100, start=5000, attributes={"language": "ar"})
    folder = pub.outbox / SLUG / "1"
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--yes")
    assert kill_when(pub, proc, lambda: folder.exists() and len(list(folder.glob("*.eml"))) >= 50)
    written = len(list(folder.glob("*.eml")))
    cancel = pub.cli("send", "cancel", SLUG, "--yes")
    assert cancel.exit_code == 0, cancel.output
    again = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert again.exit_code == 0, again.output
    got = family_mail(pub)
    assert set(got) == set(people)
    doubles = {p: langs for p, langs in got.items() if len(langs) != 1}
    assert not doubles, f"{len(doubles)} people mailed twice (the kill left {written} files)"
    with pub.engine.connect() as conn:
        states = dict(conn.execute(select(sends.c.id, sends.c.state)).all())
    assert states[1] == "cancelled" and set(list(states.values())[1:]) == {"completed"}


def test_retry_failed_works_with_editions(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    refused = add_people(pub.engine, 2, attributes={"language": "ar"})
    english = add_people(pub.engine, 2, start=10)
    server.mailbox.refuse_rcpt = {refused[0]}
    first = _smtp(pub, SLUG, "--segment", "everyone", "--editions")
    assert first.exit_code == 0, first.output
    server.mailbox.refuse_rcpt = set()
    retried = _smtp(pub, SLUG, "--segment", "everyone", "--editions", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert "retry the failed recipients of send #" in retried.output
    assert family_mail(pub, server) == {refused[0]: ["ar"], refused[1]: ["ar"],
                                        english[0]: ["en"], english[1]: ["en"]}


def test_retry_failed_of_an_edition_never_mails_a_reader_of_another(pub: Pub,
                                                                     smtp_server) -> None:
    """The workaround people used: an English send meanwhile, then `send ISSUE-ar
    --retry-failed`: the reader refused by the Arabic send gets one edition, not two."""
    server = smtp_server("plain")
    reader = add_people(pub.engine, 1, attributes={"language": "ar"})[0]
    rest = add_people(pub.engine, 3, start=10)
    server.mailbox.refuse_rcpt = {reader}
    assert _smtp(pub, ARABIC, "--segment", "everyone").exit_code == 0
    server.mailbox.refuse_rcpt = set()
    english = _smtp(pub, SLUG, "--segment", "everyone")
    assert english.exit_code == 0, english.output
    retried = _smtp(pub, ARABIC, "--segment", "everyone", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    got = family_mail(pub, server)
    assert got[reader] == ["ar"]
    assert all(got[p] == ["ar"] for p in rest)  # the Arabic send had reached them first
    assert "1 failed for good in an earlier send of the issue" in english.output


def test_retry_failed_skips_who_another_edition_reached_meanwhile(pub: Pub,
                                                                   smtp_server) -> None:
    server = smtp_server("plain")
    reader = add_people(pub.engine, 1, attributes={"language": "ar"})[0]
    add_people(pub.engine, 2, start=10)
    server.mailbox.refuse_rcpt = {reader}
    assert _smtp(pub, ARABIC, "--segment", "everyone").exit_code == 0
    server.mailbox.refuse_rcpt = set()
    again = _smtp(pub, SLUG, "--segment", "everyone", "--again")  # everyone, on purpose
    assert again.exit_code == 0, again.output
    retried = _smtp(pub, ARABIC, "--segment", "everyone", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert family_mail(pub, server)[reader] == ["en"]
    assert "will be skipped: reached by another send of this issue" in retried.output
    assert ledger_states(pub)[reader] == ["skipped", "accepted"]
    status = pub.cli("status", ARABIC).output
    assert "skipped: 1 reached by another send of this issue or one of its editions" in status
    with pub.engine.connect() as conn:
        row = conn.execute(select(send_recipients.c.last_error).where(
            send_recipients.c.email == reader, send_recipients.c.state == "skipped")).scalar()
    assert row == "reached by another send of this issue or one of its editions"


def test_the_family_holds_when_an_edition_manifest_cannot_be_read(pub: Pub) -> None:
    """Found by the state machine: an edit that left the English issue.yaml unreadable took
    it out of the family the files describe, so the Arabic edition went to its readers too.
    The ledger remembers each send's family."""
    english = add_people(pub.engine, 2)
    arabic = add_people(pub.engine, 1, start=10, attributes={"language": "ar"})
    assert pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes").exit_code == 0
    manifest = pub.root / "issues" / SLUG / "issue.yaml"
    manifest.write_text(manifest.read_text().replace('trap"', 'trap" (edited)', 1))
    later = add_people(pub.engine, 1, start=20, attributes={"language": "ar"})
    plain = pub.cli("send", ARABIC, "--segment", "everyone", "--yes")
    assert plain.exit_code == 0, plain.output
    assert family_mail(pub) == {**{p: ["en"] for p in english},
                                **{p: ["ar"] for p in arabic + later}}
    editions = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert editions.exit_code == 2 and f"issues/{SLUG}/issue.yaml:1" in editions.output
