"""`newsletter bounces fetch` against a real Dovecot holding the real-world samples."""

from __future__ import annotations

import email
import re

import pytest
from sqlalchemy import select

from newsletter.audience.erasure import erase
from newsletter.db.tables import subscriber_history
from newsletter.providers.bounces import imap
from newsletter.providers.bounces.imap import KEYWORD
from tests.events.conftest import MailPub, write_config
from tests.mail_fixtures import sample
from tests.providers.bounce_expectations import EXPECTED, ROWS, SECRET, SEND_ID

ALL = sorted(EXPECTED)


def expected_statuses() -> dict[str, str]:
    """Every sample's subscriber, with the status the sample should leave them in."""
    found = dict.fromkeys(ROWS.values(), "active")
    for outcome, _, _, events in EXPECTED.values():
        for kind, bounce, address, row in events:
            who = ROWS[row] if row else address  # VERP and our Message-ID name the row mailed
            if outcome == "events" and kind.value == "complained":
                found[who] = "complained"
            elif outcome == "events" and bounce is not None and bounce.value == "hard":
                found[who] = "bounced"
    return found


def soft_variant(n: int, day: int) -> bytes:
    """Sample 09 (a mailbox-full soft bounce of ines.duarte) as its n-th bounce, on `day`."""
    raw = sample("09").replace(b"4QBm8f3Jq1z9tYh@relay", f"soft{n}@relay".encode())
    return raw.replace(b"Date: Sat, 28 Nov 2026", f"Date: Sat, {day:02d} Nov 2026".encode())


def test_every_sample_end_to_end(mail_pub: MailPub) -> None:
    mail_pub.mailbox.append(*(sample(p) for p in ALL))
    result = mail_pub.fetch()
    assert result.exit_code == 0, result.output
    assert mail_pub.statuses() == expected_statuses()
    assert f"{len(ALL)} messages read" in result.output
    assert "7 hard bounces" in result.output and "2 soft bounces" in result.output
    assert "2 complaints, 1 deferral," in result.output
    # the two unrecognised messages are listed, stay in the INBOX and are flagged
    left = mail_pub.mailbox.messages("INBOX")
    assert len(left) == 2 and all(KEYWORD.encode() in flags for flags, _ in left)
    assert result.output.count("left in the mailbox:") == 2
    assert "Re: Grid queues" in result.output  # the human message, named for a person
    processed = mail_pub.mailbox.messages("Processed")
    assert len(processed) == len(ALL) - 2
    # every event is stored once, under its provider's prefix, in SendGrid's names
    stored = mail_pub.events()
    assert all(key.startswith("mailbox:") for key, *_ in stored)
    names = sorted(name for _, name, _, _ in stored)
    assert names == sorted(["bounce"] * 7 + ["blocked"] * 2 + ["spamreport"] * 2
                           + ["deferred"])
    attributed = {key for _, _, key, send in stored if send == SEND_ID}
    assert "farid.nasser@example.org" not in attributed  # SES kept no trace of our send
    assert "chen.wei@example.org" in attributed  # VERP: the address mailed, not the alias
    counters = mail_pub.counters()
    assert counters[(SEND_ID, "esme.laurent@example.org")] == {"complaints": 1}
    assert counters[(SEND_ID, "ines.duarte@example.org")] == {"blocked": 1}
    assert counters[(SEND_ID, "jonas.berg@example.org")] == {"deferred": 1}
    assert sum(c.get("bounces", 0) for c in counters.values()) == 6  # SES's is unattributed
    with mail_pub.engine.connect() as conn:
        sources = set(conn.execute(select(subscriber_history.c.source)).scalars())
    assert sources == {"mailbox"}
    # a second read finds nothing new: the flagged ones are passed over
    again = mail_pub.fetch()
    assert "0 messages read" in again.output and mail_pub.events() == stored
    rechecked = mail_pub.fetch("--recheck")
    assert "2 messages read" in rechecked.output and "2 unrecognised" in rechecked.output


def test_soft_bounces_retire_an_address_at_the_limit(mail_pub: MailPub) -> None:
    who = "ines.duarte@example.org"
    mail_pub.mailbox.append(soft_variant(1, 2), soft_variant(2, 10))
    assert mail_pub.fetch().exit_code == 0
    assert mail_pub.statuses()[who] == "active"  # two in 30 days
    mail_pub.mailbox.append(soft_variant(3, 20))
    mail_pub.fetch()
    assert mail_pub.statuses()[who] == "bounced"  # the third within 30 days


def test_soft_bounces_further_apart_than_the_window_do_not_add_up(mail_pub: MailPub) -> None:
    old = [soft_variant(n, 1).replace(b"Nov 2026", month.encode())
           for n, month in ((1, "Jun 2026"), (2, "Aug 2026"))]
    mail_pub.mailbox.append(*old, soft_variant(3, 20))
    mail_pub.fetch()
    assert mail_pub.statuses()["ines.duarte@example.org"] == "active"


def test_the_limit_is_a_setting(mail_pub: MailPub) -> None:
    config = mail_pub.root / "newsletter.yaml"
    config.write_text(config.read_text().split("bounces:")[0])
    write_config(mail_pub.root, mail_pub.mailbox,
                 "  soft_bounce_limit: 2\n  soft_bounce_days: 7\n")
    mail_pub.mailbox.append(soft_variant(1, 2), soft_variant(2, 12))  # ten days apart
    mail_pub.fetch()
    assert mail_pub.statuses()["ines.duarte@example.org"] == "active"
    mail_pub.mailbox.append(soft_variant(3, 14))  # two within seven days
    mail_pub.fetch()
    assert mail_pub.statuses()["ines.duarte@example.org"] == "bounced"


def test_an_erased_address_leaves_no_trace(mail_pub: MailPub) -> None:
    gone = ROWS[101]
    with mail_pub.engine.begin() as conn:
        erase(conn, SECRET, gone)
    mail_pub.mailbox.append(sample("01"), sample("04"))
    result = mail_pub.fetch()
    assert "1 about erased addresses (not recorded)" in result.output
    assert [key for _, _, key, _ in mail_pub.events()] == [ROWS[104]]
    assert all(key != gone for _, key in mail_pub.counters())
    assert len(mail_pub.mailbox.messages("Processed")) == 2


def test_a_crash_between_applying_and_moving_counts_nothing_twice(
        mail_pub: MailPub, monkeypatch: pytest.MonkeyPatch) -> None:
    mail_pub.mailbox.append(*(sample(p) for p in ("01", "05", "09", "14")))
    real_move = imap.Mailbox.move

    def crash(self, uids, name=None):
        raise OSError("connection reset by peer")

    monkeypatch.setattr(imap.Mailbox, "move", crash)
    crashed = mail_pub.fetch()
    assert crashed.exit_code != 0
    first_events, first_counts = mail_pub.events(), mail_pub.counters()
    assert len(first_events) == 4 and len(mail_pub.mailbox.messages("INBOX")) == 4
    monkeypatch.setattr(imap.Mailbox, "move", real_move)
    result = mail_pub.fetch()
    assert result.exit_code == 0 and "4 already applied" in result.output
    assert mail_pub.events() == first_events and mail_pub.counters() == first_counts
    assert mail_pub.mailbox.messages("INBOX") == []
    assert len(mail_pub.mailbox.messages("Processed")) == 4


def test_events_keep_the_bounce_date(mail_pub: MailPub) -> None:
    mail_pub.mailbox.append(sample("01"))
    mail_pub.fetch()
    from newsletter.db.tables import webhook_events

    with mail_pub.engine.connect() as conn:
        when = conn.execute(select(webhook_events.c.occurred_at)).scalar_one()
    date = email.message_from_bytes(sample("01"))["Date"]
    assert when.strftime("%d %b %Y %H:%M:%S") in re.sub(r"^\w+, ", "", date)


def test_bad_settings_are_one_clear_line(mail_pub: MailPub) -> None:
    config = mail_pub.root / "newsletter.yaml"
    text = config.read_text()
    config.write_text(text.replace(f"imap://{mail_pub.mailbox.user}@",
                                   f"imap://{mail_pub.mailbox.user}:secret@"))
    result = mail_pub.fetch()
    assert result.exit_code == 2
    assert "newsletter.yaml" in result.output and "must not hold a password" in result.output
    config.write_text(text)
    env = dict(mail_pub.env, NEWSLETTER_BOUNCES_PASSWORD="")
    from click.testing import CliRunner

    from newsletter.cli import main

    missing = CliRunner().invoke(main, ["-C", str(mail_pub.root), "bounces", "fetch"], env=env)
    assert missing.exit_code == 2 and "NEWSLETTER_BOUNCES_PASSWORD is not set" in missing.output
    config.write_text(text.split("bounces:")[0])
    none = mail_pub.fetch()
    assert none.exit_code == 2 and "no `bounces:` section" in none.output
