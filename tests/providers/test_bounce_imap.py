"""The bounce mailbox over IMAP, against a real Dovecot."""

from __future__ import annotations

import pytest

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.providers.bounces import imap
from newsletter.providers.bounces.imap import KEYWORD, Mailbox, MailboxUrl
from tests.mail_fixtures import BounceMailbox, sample


def _open(box: BounceMailbox, password: str | None = None) -> Mailbox:
    url = MailboxUrl.parse(box.url)
    return Mailbox(url, password or box.password, "Processed", timeout=10)


def test_reads_moves_and_sets_aside(bounce_mailbox: BounceMailbox) -> None:
    bounce_mailbox.append(sample("01"), sample("13"), sample("11"))
    with _open(bounce_mailbox) as box:
        found = list(box.new_messages())
        raw = [f.raw.replace(b"\r\n", b"\n") for f in found]
        assert (raw[0], raw[2]) == (sample("01"), sample("11"))
        assert raw[1].startswith(b"Garbage")  # Dovecot stores NUL bytes as 0x80
        assert all(f.received > 1_700_000_000 for f in found)
        box.move([found[0].uid, found[2].uid])
        box.set_aside([found[1].uid])
        box.move([found[0].uid])  # already gone (another reader moved it): no error
        assert list(box.new_messages()) == []  # the set-aside one is passed over
        assert [f.uid for f in box.new_messages(recheck=True)] == [found[1].uid]
    assert "Processed" in bounce_mailbox.folders()
    processed = bounce_mailbox.messages("Processed")
    assert len(processed) == 2 and b"\\Seen" not in processed[0][0]  # read with PEEK
    left = bounce_mailbox.messages("INBOX")
    assert len(left) == 1 and KEYWORD.encode() in left[0][0]


def test_folders_go_inside_the_personal_namespace(dovecot_inbox_namespace) -> None:
    user, password = dovecot_inbox_namespace.add_user()
    box = BounceMailbox(dovecot_inbox_namespace, user, password)
    box.append(sample("01"))
    with _open(box) as mailbox:
        assert (mailbox.prefix, mailbox.delimiter) == ("INBOX.", ".")
        mailbox.move([f.uid for f in mailbox.new_messages()])
    assert "INBOX.Processed" in box.folders() and len(box.messages("INBOX.Processed")) == 1


def test_without_keywords_unrecognised_messages_go_to_a_folder(
        bounce_mailbox: BounceMailbox) -> None:
    bounce_mailbox.append(sample("17"))
    with _open(bounce_mailbox) as box:
        box.keywords = False  # as on a server whose PERMANENTFLAGS lack \*
        box.set_aside([f.uid for f in box.new_messages()])
    assert len(bounce_mailbox.messages("Unrecognised")) == 1
    assert bounce_mailbox.messages("INBOX") == []


def test_a_big_message_is_read_in_part(bounce_mailbox: BounceMailbox,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap, "MAX_BYTES", 1000)
    bounce_mailbox.append(sample("01") + b"x" * 5000)
    with _open(bounce_mailbox) as box:
        (found,) = box.new_messages()
    assert len(found.raw) == 1000


def test_copy_and_expunge_when_the_server_cannot_move(bounce_mailbox: BounceMailbox) -> None:
    bounce_mailbox.append(sample("01"), sample("02"))
    with _open(bounce_mailbox) as box:
        box.capabilities.discard("MOVE")
        box.move([f.uid for f in box.new_messages()])
    assert len(bounce_mailbox.messages("Processed")) == 2
    assert bounce_mailbox.messages("INBOX") == []


def test_a_refused_login_and_a_missing_password_are_clear(
        bounce_mailbox: BounceMailbox) -> None:
    with pytest.raises(FailedError, match="login refused"):
        _open(bounce_mailbox, password="wrong").open()
    with pytest.raises(NewsletterError, match="NEWSLETTER_BOUNCES_PASSWORD is not set"):
        Mailbox(MailboxUrl.parse(bounce_mailbox.url), None, "Processed")
    with pytest.raises(NewsletterError, match="must not hold a password"):
        MailboxUrl.parse("imaps://bounces:hunter2@imap.example.org/INBOX")


def test_nothing_listening_is_clear() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = MailboxUrl.parse(f"imap://bounces@127.0.0.1:{port}/INBOX")
    with pytest.raises(FailedError, match="cannot reach the bounce mailbox"):
        Mailbox(url, "pw", "Processed").open()
