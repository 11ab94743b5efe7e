"""`newsletter send` through the outbox, end to end: files, personalisation, ledger rules."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.audience import add_subscriber
from newsletter.core.tokens import read_token
from newsletter.db.ledger_tables import send_recipients, sends
from tests.dispatch.conftest import SECRET, SLUG, Pub, add_people

TRICKY = 'Tom & "Jerry" <b>'


def _messages(folder: Path) -> dict[str, email.message.EmailMessage]:
    found = {}
    for path in sorted(folder.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        found[msg["To"].addresses[0].addr_spec] = msg
    return found


def _parts(msg) -> tuple[str, str]:
    return (msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content())


def test_send_writes_one_personalised_message_per_member(pub: Pub) -> None:
    people = add_people(pub.engine, 5)
    with pub.engine.begin() as conn:
        add_subscriber(conn, "tom@example.org", name=TRICKY)
        add_subscriber(conn, "nameless@example.org", name="")
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    assert "completed via outbox: 7 of 7 accepted" in result.output
    folder = pub.outbox / SLUG / "1"
    assert f"messages are in {folder}" in result.output
    found = _messages(folder)
    assert set(found) == set(people) | {"tom@example.org", "nameless@example.org"}

    tom = found["tom@example.org"]
    text, html = _parts(tom)
    assert "Hello Tom," in text and "Hello Tom," in html
    assert "You receive this email as tom@example.org" in text
    assert tom["To"].addresses[0].display_name == TRICKY
    assert tom["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = tom["List-Unsubscribe"].strip("<>")
    assert read_token(SECRET, "unsubscribe", link.rsplit("/", 1)[1]) == "tom@example.org"
    assert link in text and link in html
    # a subscriber without a name gets the template's fallback
    assert "Hello there," in _parts(found["nameless@example.org"])[0]
    assert "%%" not in text and "%%" not in html


def test_values_are_escaped_in_html_and_verbatim_in_text(pub: Pub) -> None:
    """The full name, through a template that shows it, reads exactly so in both parts."""
    template = pub.root / "templates" / "default"
    template.parent.mkdir(exist_ok=True)
    import shutil

    import newsletter

    shutil.copytree(
        Path(newsletter.__file__).parent / "templates" / "default", template, dirs_exist_ok=True
    )
    for name, line in (("email.txt.j2", '\nDear {{ recipient("name") }} of '
                        '{{ recipient("attr.org") }}.\n'),
                       ("email.mjml.j2", None)):
        path = template / name
        body = path.read_text()
        if line:
            path.write_text(body + line)
        else:
            path.write_text(body.replace("</mj-body>", '<mj-section><mj-column><mj-text>'
                                         'Dear {{ recipient("name") }} of '
                                         '{{ recipient("attr.org") }}.</mj-text></mj-column>'
                                         '</mj-section></mj-body>'))
    with pub.engine.begin() as conn:
        add_subscriber(conn, "tom@example.org", name=TRICKY, attributes={"org": "A&B <Co>"})
    assert pub.cli("send", SLUG, "--segment", "everyone", "--yes").exit_code == 0
    msg = _messages(pub.outbox)["tom@example.org"]
    text, html = _parts(msg)
    assert f"Dear {TRICKY} of A&B <Co>." in text
    assert "Dear Tom &amp; &quot;Jerry&quot; &lt;b&gt; of A&amp;B &lt;Co&gt;." in html
    assert "<b>" not in html.split("Dear", 1)[1][:80]


def test_sending_again_leaves_out_who_received_it_unless_again(pub: Pub) -> None:
    add_people(pub.engine, 3)
    assert pub.cli("send", SLUG, "--segment", "everyone", "--yes").exit_code == 0
    again = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert again.exit_code == 0, again.output
    assert "nothing to send: everyone in 'everyone' was left out" in again.output
    assert "3 already reached by this issue" in again.output
    assert not (pub.outbox / SLUG / "2").exists()
    third = pub.cli("send", SLUG, "--segment", "everyone", "--yes", "--again")
    assert third.exit_code == 0, third.output
    assert len(list((pub.outbox / SLUG / "2").glob("*.eml"))) == 3


@pytest.mark.slow
def test_editing_the_issue_after_a_send_started_resumes_with_the_frozen_message(
        pub: Pub) -> None:
    add_people(pub.engine, 3)
    first = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert first.exit_code == 0
    with pub.engine.begin() as conn:  # as if it had stopped after the first message
        conn.execute(sends.update().values(state="stopped"))
        conn.execute(send_recipients.update().where(send_recipients.c.id > 1)
                     .values(state="pending"))
    for path in sorted((pub.outbox / SLUG / "1").glob("*.eml"))[1:]:
        path.unlink()
    piece = next((pub.root / "issues" / SLUG / "pieces").glob("*.md"))
    piece.write_text(piece.read_text() + "\nOne more sentence.\n")
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    assert f"{SLUG} changed since send #1 started" in result.output
    files = sorted((pub.outbox / SLUG / "1").glob("*.eml"))
    assert len(files) == 3
    assert not any(b"One more sentence" in f.read_bytes() for f in files)  # as it started


def test_resume_sends_only_the_rest(pub: Pub) -> None:
    add_people(pub.engine, 10)
    assert pub.cli("send", SLUG, "--segment", "everyone", "--yes").exit_code == 0
    folder = pub.outbox / SLUG / "1"
    files = sorted(folder.glob("*.eml"))
    # pretend the run stopped after four messages
    with pub.engine.begin() as conn:
        ids = conn.execute(select(send_recipients.c.id).order_by(send_recipients.c.id)).scalars()
        rest = list(ids)[4:]
        conn.execute(send_recipients.update().where(send_recipients.c.id.in_(rest))
                     .values(state="pending"))
        conn.execute(sends.update().values(state="stopped"))
    for path in files[4:]:
        path.unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in files[:4]}
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    assert "Recipients:  6" in result.output and "resume send #1" in result.output
    assert sorted(folder.glob("*.eml")) == files
    assert {p.name: p.stat().st_mtime_ns for p in files[:4]} == stamps  # not rewritten


def test_a_crash_mid_batch_is_settled_by_the_files(pub: Pub) -> None:
    """Rows left in flight by a crash: the outbox looks for each file instead of guessing."""
    add_people(pub.engine, 6)
    assert pub.cli("send", SLUG, "--segment", "everyone", "--yes").exit_code == 0
    folder = pub.outbox / SLUG / "1"
    files = sorted(folder.glob("*.eml"))
    with pub.engine.begin() as conn:
        conn.execute(send_recipients.update().values(state="unknown"))
        conn.execute(sends.update().values(state="stopped", accepted=0, unknown=6))
    files[-1].unlink()  # this one never made it to disk
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(folder.glob("*.eml")) == files
    with pub.engine.connect() as conn:
        states = conn.execute(select(send_recipients.c.state)).scalars().all()
    assert states == ["accepted"] * 6


def test_dry_run_prints_the_plan_and_where_the_first_message_is(pub: Pub) -> None:
    with pub.engine.begin() as conn:
        add_subscriber(conn, "tom@example.org", name=TRICKY)
    add_people(pub.engine, 3)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Recipients:  4" in result.output
    assert f"Transport:   outbox ({pub.outbox})" in result.output  # was "outbox ()"
    sample = pub.root / "dist" / SLUG / "dry-run.eml"
    assert f"dry run: 4 messages personalised for outbox; nothing was handed over. The " \
           f"first one, as the message: {sample}" in result.output
    assert "List-Unsubscribe-Post" not in result.output  # the message is in the file, not here
    message = sample.read_text()
    assert "To: \"Tom & \\\"Jerry\\\" <b>\" <tom@example.org>" in message
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in message
    assert not pub.outbox.exists() or not list(pub.outbox.rglob("*.eml"))
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.id)).first() is None


def test_confirmation_is_asked_and_no_means_nothing_happens(pub: Pub) -> None:
    add_people(pub.engine, 2)
    result = pub.cli("send", SLUG, "--segment", "everyone", input="n\n")
    assert result.exit_code == 1
    assert "Send it?" in result.output
    for label in ("Issue:", "Subject:", "Segment:", "Recipients:  2", "Transport:   outbox"):
        assert label in result.output
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.id)).first() is None
    yes = pub.cli("send", SLUG, "--segment", "everyone", input="y\n")
    assert yes.exit_code == 0, yes.output


def test_status_shows_each_send(pub: Pub) -> None:
    add_people(pub.engine, 3)
    assert pub.cli("status", SLUG).output.strip() == f"no sends of {SLUG} yet"
    pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    out = pub.cli("status", SLUG).output
    assert f"#1 {SLUG} -> everyone via outbox: completed" in out
    assert "3 recipients: 3 accepted, 0 failed, 0 unknown, 0 pending" in out
