"""Engagement end to end: a tracked outbox send, clicks through `newsletter serve`'s redirect and
SendGrid webhook events (human opens, machine opens, a scanner burst, a scanner agent, a click
too soon after delivery, real clicks) give exactly the expected per-piece report; the redirect
refuses tampered and foreign tokens; engagement segments and sunset count people only."""

from __future__ import annotations

import datetime as dt
import json
import time
from email import policy
from email.parser import BytesParser

import lxml.html
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from newsletter.audience import Segments
from newsletter.cli import main
from newsletter.core.tokens import link_token
from newsletter.db.ledger_tables import send_recipients
from newsletter.db.tables import send_links, subscribers, webhook_events
from newsletter.events import tracking
from tests.web.public.conftest import SECRET, Site, event, post_events

SLUG = "2026-11-24"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1"
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")


def cli(site: Site, *args: str):
    result = CliRunner().invoke(main, ["-C", str(site.root), *args], env=site.env,
                                catch_exceptions=False)
    return result


def tracked_links(site: Site) -> dict[str, list[str]]:
    """Per recipient, the hrefs of their message's HTML part."""
    found = {}
    for path in sorted(site.outbox.rglob("*.eml")):
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        html = msg.get_body(("html",)).get_content()
        found[msg["To"].addresses[0].addr_spec.split("@")[0]] = [
            a.get("href") for a in lxml.html.document_fromstring(html).iter("a")]
    return found


@pytest.fixture()
def sent(site: Site) -> tuple[Site, dict[str, list[str]], dict[int, tuple[int, int, str]]]:
    """The sample issue sent with click tracking to six people (erin has `tracking: off`)."""
    with open(site.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("tracking: {clicks: true, scanner_delay_s: 10, burst_window_s: 2, "
                     "burst_links: 3}\n")
    for name in PEOPLE:
        site.add(f"{name}@example.com", name=name.title())
    with site.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.email_key == "erin@example.com")
                     .values(attributes={"tracking": "off"}))
    result = cli(site, "send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with site.engine.begin() as conn:  # delivered an hour ago, except frank's (just now)
        conn.execute(update(send_recipients).where(send_recipients.c.email != "frank@example.com")
                     .values(updated_at=an_hour_ago))
        links = {row.position: (row.piece, row.link, row.url)
                 for row in conn.execute(select(send_links))}
    return site, tracked_links(site), links


def _path(site: Site, url: str) -> str:
    return "/" + url.removeprefix(site.pub.config.public_url)


def _link(links: dict, piece: int, index: int) -> int:
    return next(p for p, (pc, i, _) in links.items() if (pc, i) == (piece, index))


@pytest.mark.slow
def test_links_are_rewritten_per_recipient_and_redirect(sent, client) -> None:
    site, hrefs, links = sent
    public = site.pub.config.public_url
    alice = hrefs["alice"]
    tracked = [h for h in alice if h.startswith(f"{public}c/")]
    assert len(tracked) == sum(1 for _, _, url in links.values() if url.startswith("http"))
    personal = {h for h in alice if "/unsubscribe/" in h or "/preferences/" in h}
    assert len(personal) == 2  # the person's own unsubscribe and preference links stay as they are
    assert set(alice) - set(tracked) == personal
    assert not set(tracked) & set(hrefs["bob"])  # one URL per link and recipient
    assert not any(h.startswith(f"{public}c/") for h in hrefs["erin"])  # tracking: off
    assert _link(links, 2, 1) and links[_link(links, 2, 1)][2] in hrefs["erin"]
    answer = client.get(_path(site, tracked[1]), headers={"User-Agent": BROWSER})
    assert answer.status_code == 302
    assert answer.headers["location"] == links[2][2]
    peek = client.head(_path(site, tracked[1]))  # a link checker's HEAD is not a click
    assert peek.status_code == 302 and peek.headers["location"] == links[2][2]
    with site.engine.connect() as conn:
        [(position, url)] = conn.execute(select(webhook_events.c.position,
                                                webhook_events.c.url)).all()
    assert (position, url) == (2, links[2][2])


def test_redirect_refuses_tampered_and_foreign_tokens(sent, client) -> None:
    site, hrefs, links = sent
    good = _path(site, next(h for h in hrefs["alice"] if "/c/" in h))
    payload, mac = good.rsplit("/", 1)[1].split(".")
    tampered = f"/c/{payload}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    foreign = "/c/" + link_token("another-secret-of-another-site", 1, 2, "alice@example.com")
    unsubscribe = max(links)  # the footer's personal unsubscribe link is no redirect target
    assert "%%" in links[unsubscribe][2]
    beyond = "/c/" + link_token(SECRET, 1, 999, "alice@example.com")
    other_send = "/c/" + link_token(SECRET, 2, 2, "alice@example.com")
    personal = "/c/" + link_token(SECRET, 1, unsubscribe, "alice@example.com")
    for path in (tampered, foreign, beyond, other_send, personal, "/c/garbage"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "location" not in answer.headers
    with site.engine.connect() as conn:
        assert conn.execute(select(webhook_events)).all() == []


def test_people_and_machines_give_the_expected_report(sent, client,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    site, hrefs, links = sent

    def click(who: str, piece: int, index: int, agent: str = BROWSER) -> None:
        position = _link(links, piece, index)
        answer = client.get(_path(site, hrefs[who][position - 1]), headers={"User-Agent": agent})
        assert answer.status_code == 302
        assert answer.headers["location"] == links[position][2]

    click("alice", 2, 1)
    click("bob", 1, 1, agent="python-requests/2.32")  # a scanner agent
    for piece, index in ((1, 1), (2, 2), (3, 1), (4, 2)):  # a scanner following every link
        click("carol", piece, index)
    click("dave", 2, 1)
    click("dave", 2, 1)
    # beyond the 2 s burst window: dave reads one link at a time. The redirect's clock jumps
    # 3.1 s ahead (the app runs in this process) rather than the test sleeping 3.1 s.
    real_now = tracking.utcnow
    monkeypatch.setattr(tracking, "utcnow", lambda: real_now() + dt.timedelta(seconds=3.1))
    click("dave", 4, 1)
    click("frank", 1, 2)  # seconds after delivery: a gateway scanner
    now = int(time.time())
    events = [
        event("delivered", "dave@example.com", "d1", send=1, at=now - 3600),
        event("open", "alice@example.com", "o1", send=1, useragent=BROWSER, ip="192.0.2.77"),
        event("open", "bob@example.com", "o2", send=1, sg_machine_open=True),
        event("open", "carol@example.com", "o3", send=1, useragent="Mozilla/5.0"),
        event("click", "dave@example.com", "c1", send=1, at=now + 30, useragent=BROWSER,
              url=links[_link(links, 3, 1)][2], ip="2001:db8:1234:5678::1"),
        event("bounce", "erin@example.com", "b1", send=1, type="bounce", reason="550 gone"),
    ]
    assert post_events(client, site.key, events).status_code == 200

    with site.engine.connect() as conn:
        rows = {r.sg_event_id: r for r in conn.execute(select(webhook_events))}
    assert rows["o1"].ip == "192.0.2.0/24" and rows["c1"].ip == "2001:db8:1234::/48"
    assert rows["o1"].user_agent == BROWSER and rows["o2"].provider_machine is True
    assert rows["c1"].position == _link(links, 3, 1)
    reasons = sorted((r.email_key.split("@")[0], r.reason) for r in rows.values() if r.machine)
    assert reasons == [("bob", "agent"), ("bob", "provider"), ("carol", "burst"),
                       ("carol", "burst"), ("carol", "burst"), ("carol", "burst"),
                       ("carol", "proxy"), ("frank", "too-soon")]

    result = cli(site, "report", SLUG, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    pieces = {p["piece"]: (p["human_clickers"], p["clicks"], p["machine_clicks"])
              for p in report["pieces"]}
    assert pieces == {0: (0, 0, 0), 1: (0, 0, 3), 2: (2, 3, 1), 3: (1, 1, 1), 4: (1, 1, 1)}
    rate = {p["piece"]: p["click_rate"] for p in report["pieces"]}
    assert rate[2] == pytest.approx(2 / 6)
    assert (report["human_openers"], report["opens"], report["machine_opens"]) == (1, 1, 2)
    assert (report["human_clickers"], report["clicks"], report["machine_clicks"]) == (2, 5, 6)
    # an outbox send reports nothing back: the bounce posted is counted, complaints are not
    # measured (null), never 0
    assert (report["bounces"], report["complaints"], report["recipients"]) == (1, None, 6)
    per_link = {(lk["piece"], lk["link"]): (lk["human_clickers"], lk["clicks"])
                for lk in report["links"]}
    assert per_link[(2, 1)] == (2, 3) and per_link[(4, 1)] == (1, 1)
    assert sum(report["hourly"]["clicks"]) == 5 and sum(report["hourly"]["opens"]) == 1
    page = (site.root / "dist" / SLUG / "report.html").read_text()
    assert "<svg" in page and "<script" not in page and links[2][2] in page

    csv_out = cli(site, "report", SLUG, "--format", "csv").output.splitlines()
    assert csv_out[0].startswith("kind,piece,link,title,expert,url,human_clickers,clicks")
    assert any(line.startswith("piece,2,,") and ",2,3,0.3333,1" in line for line in csv_out)

    experts = json.loads(cli(site, "report", "--by", "expert", "--format", "json").output)
    by_id = {row["expert"]: (row["human_clickers"], row["clicks"], row["machine_clicks"])
             for row in experts}
    piece_experts = {row.piece: row.expert for row in _pieces(site)}
    assert by_id[piece_experts[2]] == (2, 3, 1) and by_id[piece_experts[1]] == (0, 0, 3)

    segments = (site.root / "subscribers" / "segments.yaml")
    segments.write_text(segments.read_text() + "\n".join([
        "  openers: {opened: 2026-11-24}",
        "  non-openers: {none: [{opened: 2026-11-24}]}",
        "  clickers: {clicked: 2026-11-24}",
        "  piece-two: {clicked: {issue: 2026-11-24, piece: 2}}",
        "  piece-three: {clicked: {issue: 2026-11-24, piece: 3}}",
        "  engaged: {engaged_within: 90d}",
        "  other-issue: {opened: 2026-12-01}", ""]))
    loaded = Segments.load(site.root)
    with site.engine.connect() as conn:
        def members(name: str) -> set[str]:
            query = select(subscribers.c.email_key).where(loaded.condition(name))
            return {key.split("@")[0] for key in conn.execute(query).scalars()}

        assert members("openers") == {"alice"}
        assert members("non-openers") == {"bob", "carol", "dave", "frank"}  # erin bounced
        assert members("clickers") == {"alice", "dave"}
        assert members("piece-two") == {"alice", "dave"}
        assert members("piece-three") == {"dave"}
        assert members("engaged") == {"alice", "dave"}
        assert members("other-issue") == set()


def _pieces(site: Site):
    with site.engine.connect() as conn:
        return conn.execute(select(send_links.c.piece, send_links.c.expert)
                            .distinct()).all()
