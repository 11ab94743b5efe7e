"""`newsletter issues`: every issue with its date, language, editions and state, one line each,
and `--format json`. Send states come from the ledger's rows (`Ledger.sends.of_issue`)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.db.tables import subscribers
from newsletter.dispatch.approval import approve
from newsletter.dispatch.issues import STATES, send_state
from newsletter.dispatch.ledger import Ledger, SendRow, process_owner
from tests.dispatch.conftest import SLUG, Pub, add_people, artifact

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
ARABIC = f"{SLUG}-ar"


def _row(**values) -> SendRow:
    base = dict(id=1, issue=SLUG, segment="everyone", transport="outbox", content_hash="x",
                subject="s", state="completed", total=10, accepted=10, failed=0, unknown=0,
                skipped=0, cancelled=0, reach="once",
                batches=1, send_at=None, batch_id=None, owner=None, heartbeat_at=None, lease=1,
                leased_at=None, last_error=None, created_at=NOW, updated_at=NOW,
                finished_at=NOW)
    return SendRow(**{**base, **values})


def test_send_states_in_order_of_precedence() -> None:
    assert send_state([], NOW) is None
    assert send_state([_row(state="cancelled", accepted=0)], NOW) is None  # nobody reached
    state, detail, reached = send_state([_row(), _row(id=2, accepted=5, total=5)], NOW)
    assert (state, reached) == ("sent", 15) and detail.startswith("2 sends, last 2026-11-24")
    later = NOW + dt.timedelta(hours=2)
    state, detail, _ = send_state([_row(send_at=later, batch_id="b")], NOW)
    assert state == "scheduled" and "at 2026-11-24 14:00 UTC" in detail
    stopped = _row(id=3, state="stopped", accepted=4, last_error="SMTP server refused")
    state, detail, reached = send_state([_row(), stopped], NOW)
    assert state == "paused" and "send #3" in detail and "SMTP server refused" in detail
    assert reached == 14
    dead = _row(id=4, state="sending", owner="elsewhere:1", heartbeat_at=NOW)
    assert send_state([dead], NOW)[0] == "paused"  # interrupted: not alive
    guarded = _row(id=6, state="stopped", accepted=3, paused_at=NOW)
    state, detail, _ = send_state([_row(), guarded], NOW)
    assert state == "paused" and "paused by the reputation guard" in detail
    assert f"newsletter send {SLUG} --resume" in detail
    alive = _row(id=5, state="sending", owner=process_owner(), heartbeat_at=dt.datetime.now(
        dt.UTC), accepted=2)
    state, detail, _ = send_state([stopped, alive], NOW)
    assert state == "sending" and "send #5: 2 of 10 accepted" in detail
    assert {"draft", "failing checks", "approved", "scheduled", "sending", "sent",
            "paused"} == set(STATES)


def _lines(pub: Pub, *extra: str) -> dict[str, dict]:
    result = pub.cli("issues", "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return {entry["slug"]: entry for entry in json.loads(result.stdout)}


def test_issues_from_draft_to_sent(pub: Pub) -> None:
    found = _lines(pub)
    assert list(found) == [ARABIC, SLUG]  # newest first, then by slug
    english = found[SLUG]
    assert english == {"slug": SLUG, "date": "2026-11-24", "language": "en",
                       "editions": [{"slug": ARABIC, "language": "ar"}], "state": "draft",
                       "detail": "", "sent": 0, "approvals": []}
    assert found[ARABIC]["language"] == "ar" and found[ARABIC]["editions"] == [
        {"slug": SLUG, "language": "en"}]

    piece = pub.root / "issues" / ARABIC / "pieces" / "trade.md"
    piece.write_text(piece.read_text() + "\nTODO\n")
    assert _lines(pub)[ARABIC]["state"] == "failing checks"
    assert _lines(pub)[ARABIC]["detail"] == "1 error"
    manifest = pub.root / "issues" / ARABIC / "issue.yaml"
    good = manifest.read_text()
    manifest.write_text("subject: [unclosed\n")
    broken = _lines(pub)[ARABIC]  # still listed
    assert (broken["state"], broken["detail"]) == ("failing checks", "does not build: 1 problem")
    manifest.write_text(good)

    p = Publication.load(pub.root)
    approve(p, build_issue(p, SLUG), "Ana Lima", check=False, engine=pub.engine)
    english = _lines(pub)[SLUG]
    assert (english["state"], english["approvals"]) == ("approved", ["Ana Lima"])

    add_people(pub.engine, 3)
    assert pub.cli("send", SLUG, "--segment", "everyone", "--yes").exit_code == 0
    english = _lines(pub)[SLUG]
    assert (english["state"], english["sent"]) == ("sent", 3)
    text = pub.cli("issues").output.splitlines()
    [line] = [line for line in text if line.startswith(SLUG + " ")]
    assert "2026-11-24  en" in line and "sent to 3 — 1 send, last" in line
    assert f"[editions: ar ({ARABIC})]" in line


def test_a_stopped_send_shows_as_paused(pub: Pub) -> None:
    add_people(pub.engine, 2)
    ledger = Ledger(pub.engine)
    send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                               artifact=artifact(), members=subscribers.c.id > 0)
    line = _lines(pub)[SLUG]
    assert line["state"] == "sending" and "0 of 2 accepted" in line["detail"]
    ledger.sends.release(send.id, "interrupted")
    line = _lines(pub)[SLUG]
    assert line["state"] == "paused" and "interrupted" in line["detail"]
    assert "paused — send #1 to 'everyone' stopped at 0 of 2: interrupted" in \
        pub.cli("issues").output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_issues(pub: Pub) -> None:
    import shutil

    shutil.rmtree(pub.root / "issues")
    assert "no issues yet" in pub.cli("issues").output
    assert json.loads(pub.cli("issues", "--format", "json").stdout) == []
