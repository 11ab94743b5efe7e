"""Reports say what they know: every piece listed (one without links says "no links"), experts
by name, the subject as report.html's title, "not measured" (null in JSON) where the transport
or the settings could not measure, personal links named by what they are and never shown as
placeholders, and people counted once after `send --again`. Real sends (outbox, and SendGrid
against the local fake), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re

import lxml.html
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from newsletter.cli import main
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import send_contents, send_links
from newsletter.events.report import issue_report
from newsletter.events.report_sends import (
    PieceInfo,
    people_reached,
    personal_link,
    record_contents,
    sends_of,
)
from tests.web.public.conftest import Site

SLUG = "2026-11-24"
SUBJECT = "Grid queues, ransomware, Egypt's squeeze & the tariff trap"
PEOPLE = ["Alice@Example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
EXPERTS = {1: ("elena-marsh", "Elena Marsh"), 2: ("tomas-reyes", "Tomás Reyes"),
           3: ("samira-haddad", "Samira Haddad"), 4: ("david-okafor", "David Okafor")}


def cli(site: Site, *args: str) -> str:
    result = CliRunner().invoke(main, ["-C", str(site.root), *args], env=site.env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def strip_links(site: Site, piece: str = "egypt.md") -> None:
    """Make one piece of the sample issue a piece without links."""
    path = site.root / "issues" / SLUG / "pieces" / piece
    path.write_text(re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", path.read_text(encoding="utf-8")),
                    encoding="utf-8")


def send_twice(site: Site) -> None:
    """Everyone, then everyone again (`--again`): 8 messages to 4 people."""
    for name in PEOPLE:
        site.add(name, name=name.split("@")[0].title())
    cli(site, "send", SLUG, "--segment", "everyone", "--yes")
    cli(site, "send", SLUG, "--segment", "everyone", "--again", "--yes")


@pytest.mark.slow
def test_an_outbox_send_reports_what_it_knows(site: Site) -> None:
    strip_links(site)
    send_twice(site)

    text = cli(site, "report", SLUG)
    assert f"Issue {SLUG}: {SUBJECT}" in text
    assert "4 people reached (8 messages accepted) in 2 sends" in text  # people, once each
    assert "opens: not measured" in text and "clicks: not measured" in text
    assert "0 people" not in text
    for number, (expert_id, name) in EXPERTS.items():
        line = next(x for x in text.splitlines() if x.startswith(f"  {number}. "))
        assert f"({name})" in line and expert_id not in line
    assert "3. Egypt's economy needs fewer bailouts and more breathing room (Samira Haddad): " \
           "no links" in text
    assert "personal unsubscribe link (one per recipient)" in text
    assert "personal preference page link (one per recipient)" in text
    assert "%%" not in text and "(unsubscribe)" not in text

    data = json.loads(cli(site, "report", SLUG, "--format", "json"))
    assert (data["recipients"], data["messages"], data["subject"]) == (4, 8, SUBJECT)
    assert data["opens"] is None and data["human_openers"] is None
    assert data["clicks"] is None and data["hourly"]["opens"] is None
    assert data["measured"] == {"opens": False, "clicks": False, "bounces": False,
                                "complaints": False, "unsubscribes": False}
    pieces = {p["piece"]: p for p in data["pieces"]}
    assert sorted(pieces) == [0, 1, 2, 3, 4]
    assert pieces[3]["links"] == 0 and pieces[3]["clicks"] is None
    assert {n: (pieces[n]["expert"], pieces[n]["expert_name"]) for n in EXPERTS} == EXPERTS
    personal = {lk["personal"] for lk in data["links"] if lk["personal"]}
    assert {"unsubscribe link", "preference page link"} <= personal
    assert "%%" not in json.dumps(data)

    rows = list(csv.DictReader(io.StringIO(cli(site, "report", SLUG, "--format", "csv"))))
    piece_rows = {int(r["piece"]): r for r in rows if r["kind"] == "piece"}
    assert piece_rows[3]["clicks"] == "no links" and piece_rows[3]["expert_name"] == \
        "Samira Haddad"
    assert piece_rows[1]["clicks"] == "not measured"
    unsubscribe = next(r for r in rows if r["personal"] == "unsubscribe link")
    assert unsubscribe["url"] == "" and unsubscribe["clicks"] == "not measured"
    assert "%%" not in "".join(",".join(r.values()) for r in rows)

    page = lxml.html.parse(str(site.root / "dist" / SLUG / "report.html")).getroot()
    assert page.findtext(".//title").startswith(SUBJECT)
    assert page.findtext(".//h1") == SUBJECT
    cells = [[c.text_content().strip() for c in tr.iter("td")]
             for tr in page.get_element_by_id("pieces").iter("tr")][1:]
    assert [c[1] for c in cells[:4]] == [name for _, name in EXPERTS.values()]
    assert cells[2][2] == "no links" and cells[0][2] == "not measured"
    assert page.get_element_by_id("card-opens").text_content().startswith("not measured")
    notes = page.find_class("notes")[0]
    assert "tracking: {clicks: true}" in notes.xpath(".//code/text()")  # says how to measure
    assert "no tracking pixel" in notes.text_content()
    page_text = page.text_content()
    assert "%%" not in page_text and not any(i in page_text for i, _ in EXPERTS.values())
    assert "personal unsubscribe link (one per recipient)" in page_text

    experts = json.loads(cli(site, "report", "--by", "expert", "--format", "json"))
    by_id = {row["expert"]: row for row in experts}
    assert set(by_id) == {i for i, _ in EXPERTS.values()}
    samira = by_id["samira-haddad"]
    assert (samira["name"], samira["pieces"], samira["pieces_with_links"]) == (
        "Samira Haddad", 1, 0)
    assert samira["clicks"] is None and by_id["elena-marsh"]["clicks"] is None
    assert {row["recipients"] for row in experts} == {4}  # per person, not per message
    by_text = cli(site, "report", "--by", "expert")
    assert "Samira Haddad: 1 piece in 1 issue; no links" in by_text
    assert "Elena Marsh: 1 piece in 1 issue; clicks not measured" in by_text


def test_click_tracking_measures_clicks_but_not_personal_links(site: Site) -> None:
    with open(site.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("tracking: {clicks: true}\n")
    for name in PEOPLE[:2]:
        site.add(name)
    cli(site, "send", SLUG, "--segment", "everyone", "--yes")
    data = json.loads(cli(site, "report", SLUG, "--format", "json"))
    assert data["measured"]["clicks"] is True and data["measured"]["opens"] is False
    assert (data["clicks"], data["human_clickers"]) == (0, 0)  # measured: 0 is the answer
    for link in data["links"]:
        tracked = link["url"].startswith("https://")
        assert (link["clicks"] == 0) is tracked, link  # personal links: null, not 0
        assert (link["personal"] is not None) is (link["url"] == "")
    text = cli(site, "report", SLUG)
    assert "clicks: 0 people (0 clicks)" in text and "opens: not measured" in text


def test_a_sendgrid_send_measures_opens_and_bounces(site: Site, sendgrid) -> None:
    strip_links(site)
    for name in PEOPLE:
        site.add(name)
    cli(site, "send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    data = json.loads(cli(site, "report", SLUG, "--format", "json"))
    assert all(data["measured"].values())
    assert (data["human_openers"], data["bounces"], data["recipients"]) == (0, 0, 4)
    assert {p["piece"]: p["links"] == 0 for p in data["pieces"]}[3]  # still listed
    text = cli(site, "report", SLUG)
    assert "opens: 0 people (0 opens)" in text and "not measured" not in text
    assert "no links" in text


def test_sends_from_before_the_contents_table_still_report(site: Site) -> None:
    """An upgraded database: sends whose pieces were never recorded report the pieces that had
    links, with the names the registry gives, and their clicks as before (measured)."""
    for name in PEOPLE[:3]:
        site.add(name)
    cli(site, "send", SLUG, "--segment", "everyone", "--yes")
    with site.engine.begin() as conn:
        conn.execute(delete(send_contents))
    with site.engine.connect() as conn:
        report = issue_report(conn, SLUG, {"elena-marsh": "Dr Elena Marsh"})
    assert report is not None and report.recipients == 3
    assert [p.piece for p in report.pieces] == [1, 2, 3, 4, 0]  # the sample's pieces all link
    assert report.pieces[0].name == "Dr Elena Marsh" and report.pieces[1].name == "tomas-reyes"
    assert report.knows("clicks") and not report.knows("opens")


def test_a_resumed_send_keeps_its_first_record(site: Site) -> None:
    with site.engine.begin() as conn:
        conn.execute(insert(sends).values(
            id=7, issue=SLUG, segment="everyone", transport="smtp", content_hash="0" * 64,
            subject="S", state="sending", created_at=_now(), updated_at=_now()))
    record_contents(site.engine, 7, [PieceInfo(1, "First", "a", "A")], click_tracking=False)
    record_contents(site.engine, 7, [PieceInfo(1, "Edited", "b", "B")], click_tracking=True)
    with site.engine.connect() as conn:
        [facts] = sends_of(conn, SLUG)
    assert (facts.pieces, facts.click_tracking) == ([PieceInfo(1, "First", "a", "A")], False)


@pytest.mark.parametrize(("url", "kind"), [
    ("%%unsubscribe_url%%", "unsubscribe link"),
    ("%%preferences_url%%", "preference page link"),
    ("%%preferences_url%%?stop=energy", "link to stop 'energy'"),
    ("https://example.org/r?who=%%email%%", "personal link"),
    ("https://example.org/research", None),
    ("mailto:info@example.org", None),
])
def test_personal_links_are_named_by_what_they_are(url: str, kind: str | None) -> None:
    assert personal_link(url) == kind


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


STATES = st.sampled_from(["accepted", "accepted", "failed", "unknown", "pending"])
ADDRESSES = st.sampled_from(["a@example.com", "A@example.com", "b@example.com",
                             "c@Example.com", "c@example.com", "d@example.com"])


@settings(max_examples=20, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.integers(1, 3), ADDRESSES, STATES), max_size=25),
       chosen=st.sets(st.integers(1, 3), min_size=1))
def test_people_reached_counts_each_person_once(site: Site, rows, chosen) -> None:
    """Against a plain reference: distinct addresses (any case) with an accepted message in
    the chosen sends."""
    with site.engine.begin() as conn:
        conn.execute(delete(send_recipients))
        conn.execute(delete(send_links))
        conn.execute(delete(sends))
        for send_id in (1, 2, 3):
            conn.execute(insert(sends).values(
                id=send_id, issue=SLUG, segment="s", transport="outbox", content_hash="0" * 64,
                subject="S", state="completed", created_at=_now(), updated_at=_now()))
        if rows:
            conn.execute(insert(send_recipients), [
                {"send_id": s, "email": a, "name": "", "attributes": {}, "state": state}
                for s, a, state in rows])
    expected = len({a.lower() for s, a, state in rows if s in chosen and state == "accepted"})
    with site.engine.connect() as conn:
        assert people_reached(conn, chosen) == expected


def test_a_personal_subject_is_titled_without_its_placeholders() -> None:
    from newsletter.events.report import subject_of
    from newsletter.events.report_sends import SendFacts

    def facts(subject: str) -> SendFacts:
        return SendFacts(1, SLUG, "outbox", subject, _now(), 0)

    assert subject_of([facts("%%first_name|Reader%%, your week")]) == "Reader, your week"
    assert subject_of([facts("A week for %%name%%")]) == "A week for [name]"
    assert subject_of([facts("Old"), facts("Newest")]) == "Newest"  # the latest send's
