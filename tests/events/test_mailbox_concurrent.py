"""Two `newsletter bounces fetch` processes on one mailbox at once: every message is read by
one of them, every event applied once, every message moved once."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from newsletter.compose.schema import BouncesConfig
from newsletter.core.tokens import verp_token
from newsletter.events.mailbox import apply_readings
from newsletter.providers.bounces.classify import Context, read
from tests.events.conftest import ROOT, MailPub, add_send, add_subscribers
from tests.mail_fixtures import sample
from tests.providers.bounce_expectations import RETURN_PATH, ROWS, SECRET, SEND_ID

SOFT = 40  # soft bounces of one address per round: a doubled one would show in its counter


def soft(round_: int, n: int) -> bytes:
    return sample("09").replace(b"4QBm8f3Jq1z9tYh@relay", f"r{round_}s{n}@relay".encode())


def renamed(prefix: str, round_: int) -> bytes:
    """A sample as a new message (its own Message-ID) for this round."""
    return re.sub(rb"(?im)^(Message-Id:\s*<)", rb"\1r%d." % round_, sample(prefix), count=1)


@pytest.mark.slow
def test_two_fetchers_at_once(mail_pub: MailPub) -> None:
    for round_ in range(1, 4):
        messages = [soft(round_, n) for n in range(SOFT)]
        messages += [renamed(p, round_) for p in ("01", "05", "10", "11")]
        mail_pub.mailbox.append(*messages)
        first, second = (mail_pub.spawn("bounces", "fetch") for _ in range(2))
        outputs = [p.communicate(timeout=120) for p in (first, second)]
        assert (first.returncode, second.returncode) == (0, 0), outputs
        read = [re.search(r"(\d+) messages? read", out) for out, _ in outputs]
        busy = ["another reader is at work" in out for out, _ in outputs]
        assert sum(int(m.group(1)) for m in read if m) == len(messages), outputs
        assert all(bool(m) != b for m, b in zip(read, busy, strict=True)), outputs
        counters = mail_pub.counters()
        assert counters[(SEND_ID, ROWS[109])] == {"blocked": SOFT * round_}
        assert counters[(SEND_ID, ROWS[110])] == {"deferred": round_}
        assert mail_pub.statuses()[ROWS[109]] == "bounced"  # its third soft bounce did it
        assert mail_pub.statuses()[ROWS[105]] == "complained"
        stored = mail_pub.events()
        assert len(stored) == (SOFT + 3) * round_ == len({key for key, *_ in stored})
        assert mail_pub.mailbox.messages("INBOX") == []
        processed = mail_pub.mailbox.messages("Processed")
        assert len(processed) == len(messages) * round_  # each moved once, none lost
        bodies = [raw for _, raw in processed]
        assert len(set(bodies)) == len(bodies)


@pytest.mark.slow
def test_two_appliers_at_once_apply_each_event_once(mail_pub: MailPub, tmp_path) -> None:
    """The event store's key alone (no one-reader lock) keeps two processes applying the same
    messages from counting anything twice, and each counts the soft bounces the other just
    applied: for each of thirty addresses with one soft bounce on record, one process applies
    the second while the other applies the third, at the same moment."""
    rows = {200 + n: f"soft.reader{n}@example.org" for n in range(30)}
    add_subscribers(mail_pub.engine, list(rows.values()))
    add_send(mail_pub.engine, 8, rows)
    token = re.search(rb"bounces\+([0-9a-z-]+)@", sample("09")).group(1)
    folder = tmp_path / "messages"
    folder.mkdir()
    first = []
    for row in rows:
        for k in range(3):
            raw = soft(row, k).replace(token, verp_token(SECRET, 8, row).encode())
            if k == 0:
                first.append(raw)
            else:
                (folder / f"{row}-{k}.eml").write_bytes(raw)
    config = BouncesConfig(imap_url="imap://bounces@127.0.0.1/INBOX", return_path=RETURN_PATH)
    ctx = Context(config, [SECRET], "example.org")
    with mail_pub.engine.begin() as conn:  # one soft bounce each on record already
        apply_readings(conn, [read(raw, ctx) for raw in first], secret=SECRET)
    go = tmp_path / "go"
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.events.mailbox_worker", mail_pub.env[
            "NEWSLETTER_DATABASE_URL"], str(folder), order, str(go)],
        cwd=ROOT, env={**os.environ, **mail_pub.env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for order in ("forward", "backward")]
    go.touch()
    outputs = [w.communicate(timeout=180) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    counters = mail_pub.counters()
    assert all(counters[(8, email)] == {"blocked": 3} for email in rows.values()), counters
    assert len(mail_pub.events()) == 3 * len(rows)
    statuses = mail_pub.statuses()
    assert {statuses[email] for email in rows.values()} == {"bounced"}
