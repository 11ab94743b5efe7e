"""Drafting the same slug again: an untouched draft is replaced, an edited one is not (unless
--force, which keeps it aside); the folder is written at once, whatever fails or is killed;
and "since the last sent issue" comes from the send ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.compose.draft.folder import edited_files
from tests.compose.draft_helpers import SLUG, draft, manifest
from tests.compose.draft_site import Site

SINCE = ("--since", "2000-01-01")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Staging or retired folders left in .newsletter/drafts/."""
    drafts = root / ".newsletter" / "drafts"
    return sorted(p.name for p in drafts.iterdir() if p.name.startswith("."))


def test_an_untouched_draft_is_drafted_again(fresh_site: Site, publication: Path) -> None:
    assert draft(publication, fresh_site, "feed.xml", *SINCE).exit_code == 0
    assert draft(publication, fresh_site, "feed.xml", "--pick", "1", *SINCE).exit_code == 0
    assert manifest(publication)["pieces"] == ["pieces/grid-queues.md"]
    assert sorted(snapshot(publication / "issues" / SLUG)) == [
        "hero.jpg", "issue.yaml", "pieces/grid-queues.md"]
    assert edited_files(publication, SLUG) == [] and leftovers(publication) == []


def test_an_edited_draft_is_kept_unless_forced(fresh_site: Site, publication: Path) -> None:
    folder = publication / "issues" / SLUG
    assert draft(publication, fresh_site, "feed.xml", *SINCE).exit_code == 0
    edited = folder / "pieces" / "tariff-trap.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nThe editor's own line.\n",
                      encoding="utf-8")
    (folder / "chart.png").write_bytes(b"an image the editor added")
    before = snapshot(folder)
    fresh_site.clear()
    refused = draft(publication, fresh_site, "feed.xml", *SINCE)
    assert refused.exit_code == 2
    assert [line.split(": ")[0].rsplit("/", 2)[-2:] for line in refused.stderr.splitlines()] == [
        [SLUG, "chart.png"], ["pieces", "tariff-trap.md"]]
    assert "edited since it was drafted; nothing done; pass --force" in refused.stderr
    assert snapshot(folder) == before and fresh_site.paths() == []  # refused before any request

    forced = draft(publication, fresh_site, "feed.xml", "--force", *SINCE)
    assert forced.exit_code == 0, forced.output
    [kept] = (publication / ".newsletter" / "drafts" / "replaced").iterdir()
    assert f"kept in {kept}" in forced.stdout and snapshot(kept) == before
    assert "The editor's own line." not in (folder / "pieces" / "tariff-trap.md").read_text()
    assert edited_files(publication, SLUG) == []


def test_an_issue_not_drafted_here_is_not_replaced(fresh_site: Site, publication: Path) -> None:
    from tests.compose.helpers import run

    assert run(publication, "new", SLUG).exit_code == 0
    refused = draft(publication, fresh_site, "feed.xml", *SINCE)
    assert refused.exit_code == 2 and "was not drafted from a feed here" in refused.stderr
    assert manifest(publication)["pieces"] == ["pieces/first.md"]
    assert draft(publication, fresh_site, "feed.xml", "--force", *SINCE).exit_code == 0
    assert len(manifest(publication)["pieces"]) == 5


def test_a_failure_while_writing_leaves_no_half_folder(
        fresh_site: Site, publication: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = publication / "issues" / SLUG
    assert draft(publication, fresh_site, "feed.xml", "--pick", "1", *SINCE).exit_code == 0
    before = snapshot(folder)
    record = (publication / ".newsletter" / "drafts" / f"{SLUG}.json").read_bytes()
    written: list[Path] = []
    real = Path.write_bytes

    def full_disk(self: Path, data: bytes) -> int:
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    failed = draft(publication, fresh_site, "feed.xml", *SINCE)
    assert failed.exit_code == 1 and "No space left on device" in failed.stderr
    assert len(written) == 2  # it failed part way through
    assert snapshot(folder) == before  # the earlier draft, whole
    assert (publication / ".newsletter" / "drafts" / f"{SLUG}.json").read_bytes() == record
    assert leftovers(publication) == []


def newsletter(root: Path, website: Site, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-C", str(root), "new", SLUG, *args],
        env={**os.environ, **website.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def test_killed_while_fetching_it_leaves_nothing(fresh_site: Site, publication: Path) -> None:
    process = newsletter(publication, fresh_site, "--from-feed", fresh_site.url("hostile.xml"),
                         "--timeout", "30", *SINCE)
    try:
        assert fresh_site.event("/slow/lost-in-transit.html").wait(60)  # stuck on that page
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert not (publication / "issues" / SLUG).exists()
    again = draft(publication, fresh_site, "feed.xml", *SINCE)
    assert again.exit_code == 0 and leftovers(publication) == []


@pytest.mark.slow
def test_two_drafts_of_one_slug_at_once(fresh_site: Site, publication: Path) -> None:
    runs = [newsletter(publication, fresh_site, "--from-feed", fresh_site.url(feed), *SINCE)
            for feed in ("feed.xml", "atom.xml")]
    outcomes = [(p.wait(120), p.communicate()) for p in runs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    # the later one replaced the earlier (untouched) draft, whole: its pieces, as recorded
    pieces = manifest(publication)["pieces"]
    assert len(pieces) in (5, 3)
    assert all((publication / "issues" / SLUG / p).is_file() for p in pieces)
    assert edited_files(publication, SLUG) == [] and leftovers(publication) == []


def test_since_the_last_completed_send(fresh_site: Site, publication: Path, db_url: str) -> None:
    from newsletter.db import open_database, write_connection
    from newsletter.db.ledger_tables import sends

    now = dt.datetime.now(dt.UTC)
    row = {"segment": "everyone", "transport": "outbox", "content_hash": "0" * 64,
           "subject": "An earlier issue", "total": 1, "accepted": 1}
    engine = open_database(db_url)
    with write_connection(engine) as conn:
        conn.execute(sends.insert(), [
            {**row, "issue": "2026-11-01", "state": "completed", "created_at": now -
             dt.timedelta(days=20), "updated_at": now, "finished_at": now},
            {**row, "issue": "2026-11-24", "state": "completed", "created_at": now -
             dt.timedelta(days=2, hours=12), "updated_at": now, "finished_at": now},
            {**row, "issue": "2026-11-25", "state": "cancelled", "created_at": now -
             dt.timedelta(days=1, hours=12), "updated_at": now, "finished_at": now},
        ])
        conn.commit()
    engine.dispose()
    result = draft(publication, fresh_site, "feed.xml", env={"NEWSLETTER_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "(the last completed send (2026-11-24))" in result.stdout
    assert manifest(publication)["pieces"] == ["pieces/grid-queues.md",
                                               "pieces/water-utilities.md"]
    record = json.loads((publication / ".newsletter" / "drafts" / f"{SLUG}.json").read_text())
    assert record["feed"] == fresh_site.url("feed.xml")
