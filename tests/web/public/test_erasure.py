"""Erasure that stays erased, on SQLite and PostgreSQL.

`subscribers forget` removes the person from every table (ledger provider ids and errors
included) and their outbox files; events that arrive later for the address (webhook, tracked
clicks) are kept only anonymously; imports, `add` and every spelling of the address are refused;
the list survives a secret rotation; only the person's own confirmed sign-up brings the address
back, and even then old-link clicks stay anonymous; `show --history` and the webhook's audit rows.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, update

from newsletter.audience import add_subscriber
from newsletter.audience.preferences import pause_until, save_preferences
from newsletter.cli import main
from newsletter.core.tokens import link_token, make_token
from newsletter.db.engine import write_connection
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import (
    engagement,
    erased_addresses,
    metadata,
    signups,
    subscriber_history,
    webhook_events,
)
from tests.web.public.conftest import (
    SECRET,
    Site,
    confirm_link,
    event,
    make_client,
    post_events,
    post_form,
)

ADDRESS = "Leaving.Reader@example.com"
KEY = ADDRESS.lower()
NAME = "Leaving Reader"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 Erasure-Test-Agent"
OLD = "old-secret-of-at-least-thirty-two-characters"
NEW = "new-secret-of-at-least-thirty-two-characters"


def cli(site: Site, *args: str, input: str | None = None, env: dict | None = None) -> Result:
    return CliRunner().invoke(main, ["-C", str(site.root), *args], env=env or site.env,
                              input=input, catch_exceptions=False)


def everything(site: Site) -> str:
    """Every row of every table, as text."""
    found = []
    with site.engine.connect() as conn:
        for table in metadata.sorted_tables:
            found += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(found).lower()


def imported(site: Site, tmp_path, address: str = ADDRESS, env: dict | None = None) -> Result:
    csv = tmp_path / "people.csv"
    csv.write_text(f"email,name,tags\n{address},{NAME},energy\n"
                   "stays@example.com,Stays,energy\n", encoding="utf-8")
    return cli(site, "subscribers", "import", str(csv), env=env)


def tracked(site: Site) -> None:
    with open(site.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("tracking: {clicks: true}\n")


def sent_to_her(site: Site, client, tmp_path) -> str:
    """Import, a tracked send, a webhook open with agent and IP: the path of her click link."""
    tracked(site)
    assert imported(site, tmp_path).exit_code == 0
    result = cli(site, "send", "2026-11-24", "--segment", "energy", "--yes")
    assert result.exit_code == 0, result.output
    assert post_events(client, site.key, [event("open", ADDRESS, "ev-1", send=1, useragent=AGENT,
                                                ip="203.0.113.9")]).status_code == 200
    return f"/c/{link_token(SECRET, 1, 1, ADDRESS)}"


def count(site: Site, table, *where) -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.mark.slow
def test_forget_erases_everywhere_keeps_counts_and_refuses_reimport(site: Site, client,
                                                                    tmp_path) -> None:
    link = sent_to_her(site, client, tmp_path)
    assert client.get(link).status_code == 302
    with site.engine.begin() as conn:  # as an SMTP 550 would leave them
        conn.execute(update(send_recipients).values(
            last_error=f"550 5.1.1 <{ADDRESS}>: Recipient address rejected"))
        conn.execute(update(sends).values(last_error=f"stopped after <{KEY}> and others"))
    with site.engine.connect() as conn:
        ids = conn.execute(select(send_recipients.c.provider_id)).scalars().all()
        counts = conn.execute(select(sends.c.total, sends.c.accepted)).one()
    assert any("leaving.reader" in (i or "").lower() for i in ids)  # outbox file names
    assert KEY in everything(site) and AGENT.lower() in everything(site)
    files = list(site.outbox.rglob("*.eml"))
    assert any("Leaving.Reader" in p.name for p in files)

    result = cli(site, "subscribers", "forget", ADDRESS, "--yes")
    assert result.exit_code == 0, result.output
    assert "(a subscriber); 1 send-ledger rows and 2 events kept" in result.output
    assert "1 outbox files deleted" in result.output
    dump = everything(site)
    assert KEY not in dump and "leaving.reader" not in dump and "leaving reader" not in dump
    assert AGENT.lower() not in dump and "203.0.113" not in dump
    assert [p.name for p in site.outbox.rglob("*.eml")] == [
        p.name for p in files if "Leaving.Reader" not in p.name]
    with site.engine.connect() as conn:
        assert conn.execute(select(sends.c.total, sends.c.accepted)).one() == counts
        assert "[erased address]" in conn.execute(select(sends.c.last_error)).scalar_one()
        assert conn.execute(select(func.sum(engagement.c.opens))).scalar() == 1
    assert count(site, send_recipients) == 2 and count(site, erased_addresses) == 1
    assert site.status("stays@example.com") == "active"  # nobody else touched

    again = imported(site, tmp_path)
    assert again.exit_code == 1
    assert "erased at the person's request" in again.output
    assert site.status(ADDRESS) is None
    add = cli(site, "subscribers", "add", ADDRESS.upper())
    assert add.exit_code == 2
    assert "erased at the person's request" in add.output
    assert site.status(ADDRESS) is None


def test_events_after_erasure_are_anonymous_and_forget_works_again(site: Site, client,
                                                                   tmp_path) -> None:
    link = sent_to_her(site, client, tmp_path)
    assert cli(site, "subscribers", "forget", ADDRESS, "--yes").exit_code == 0
    # an old tracked link, a signed open and bounce, a spam report: after the erasure
    assert client.get(link, headers={"User-Agent": AGENT}).status_code == 302
    assert post_events(client, site.key, [
        event("open", ADDRESS.upper(), "late-1", send=1, useragent=AGENT, ip="203.0.113.9"),
        event("bounce", ADDRESS, "late-2", send=1, type="bounce"),
        event("click", ADDRESS, "late-3", send=1, url=f"https://example.org/?who={KEY}",
              useragent=AGENT, ip="2001:db8::1"),
    ]).status_code == 200
    dump = everything(site)
    assert KEY not in dump and AGENT.lower() not in dump and "2001:db8" not in dump
    assert site.status(ADDRESS) is None
    assert count(site, webhook_events, webhook_events.c.sg_event_id.like("late-%")) == 3
    with site.engine.connect() as conn:  # counted for the send, for nobody
        assert conn.execute(select(func.sum(engagement.c.opens))).scalar() == 2
        assert conn.execute(select(func.sum(engagement.c.bounces))).scalar() == 1
    # forget again: the address is no longer a subscriber, and that is fine
    result = cli(site, "subscribers", "forget", ADDRESS, "--yes")
    assert result.exit_code == 0, result.output
    assert "(no longer a subscriber)" in result.output


def test_forget_reaches_an_address_that_never_became_a_subscriber(site: Site, client) -> None:
    post_form(client, {"email": ADDRESS, "name": NAME, "topics": "energy"})  # never confirmed
    assert post_events(client, site.key, [event("open", ADDRESS, "stray-1", useragent=AGENT)]
                       ).status_code == 200
    assert count(site, signups) == 1 and KEY in everything(site)
    assert len(site.messages()) == 1  # the confirmation mail holds the address too
    result = cli(site, "subscribers", "forget", f"  {ADDRESS} ", "--yes")
    assert result.exit_code == 0, result.output
    assert "(no longer a subscriber)" in result.output and "1 sign-up requests" in result.output
    assert KEY not in everything(site) and count(site, signups) == 0
    assert site.messages() == []


def test_the_erased_list_survives_a_secret_rotation(site: Site, tmp_path) -> None:
    old = {**site.env, "NEWSLETTER_SECRET": OLD}
    assert imported(site, tmp_path, env=old).exit_code == 0
    assert cli(site, "subscribers", "forget", ADDRESS, "--yes", env=old).exit_code == 0
    rotated = {**site.env, "NEWSLETTER_SECRET": NEW, "NEWSLETTER_SECRET_PREVIOUS": OLD}
    refused = imported(site, tmp_path, env=rotated)
    assert refused.exit_code == 1 and "erased at the person's request" in refused.output
    assert "1 added" not in refused.output
    # the old secret dropped for good: the list was carried over to the new one meanwhile
    new_only = {**site.env, "NEWSLETTER_SECRET": NEW}
    add = cli(site, "subscribers", "add", ADDRESS, env=new_only)
    assert add.exit_code == 2 and "erased at the person's request" in add.output
    assert site.status(ADDRESS) is None
    # a secret that never saw the list fails closed, with what to do
    stranger = {**site.env, "NEWSLETTER_SECRET": "x" * 40}
    closed = cli(site, "subscribers", "add", "someone.new@example.com", env=stranger)
    assert closed.exit_code == 2 and "NEWSLETTER_SECRET_PREVIOUS" in closed.output
    assert site.status("someone.new@example.com") is None


SPELLINGS = (" leaving.reader@example.com", "LEAVING.READER@EXAMPLE.COM\t",
             "leaving.reader@ｅｘａｍｐｌｅ.com", "Leaving.Reader@Example.Com")


def test_every_spelling_of_an_erased_address_is_refused(site: Site, client, tmp_path) -> None:
    assert imported(site, tmp_path).exit_code == 0
    assert cli(site, "subscribers", "forget", ADDRESS, "--yes").exit_code == 0
    for spelling in SPELLINGS:
        add = cli(site, "subscribers", "add", spelling)
        assert add.exit_code == 2 and "erased at the person's request" in add.output, spelling
        assert imported(site, tmp_path, address=spelling).exit_code == 1, spelling
    assert KEY not in everything(site)


@pytest.mark.parametrize("variant", [
    "Zed@example.org", " zed@example.org ", "zed@ｅｘａｍｐｌｅ.org", "ZED@EXAMPLE.ORG",
    "zed@EXAMPLE.org\n"])
def test_every_spelling_has_one_canonical_form(variant: str) -> None:
    from newsletter.audience.erasure import canonical

    assert canonical(variant) == "zed@example.org"


def test_only_her_confirmed_sign_up_brings_her_back_and_old_clicks_stay_anonymous(
        site: Site, client, tmp_path) -> None:
    link = sent_to_her(site, client, tmp_path)
    assert cli(site, "subscribers", "forget", ADDRESS, "--yes").exit_code == 0
    post_form(client, {"email": ADDRESS, "topics": "energy"})
    # a confirmation link mailed a minute before the erasure is no new wish
    early = "/confirm/" + make_token(SECRET, "confirm", ADDRESS, ttl=3600, stamped=True,
                                     now=time.time() - 60)
    assert "expired" in client.post(early).text
    assert site.status(ADDRESS) is None
    fresh = "/" + confirm_link(site.messages()[-1]).split("/", 3)[3]
    assert "You are subscribed" in client.post(fresh).text
    assert site.status(ADDRESS) == "active"
    assert imported(site, tmp_path).exit_code == 0  # back by her own wish: imports may update
    # a click on a link of the send before her erasure is not hers any more
    assert client.get(link, headers={"User-Agent": AGENT}).status_code == 302
    assert post_events(client, site.key, [event("open", ADDRESS, "late-9", send=1,
                                                useragent=AGENT)]).status_code == 200
    with site.engine.connect() as conn:
        keys = conn.execute(select(webhook_events.c.email_key)).scalars().all()
        agents = conn.execute(select(webhook_events.c.user_agent)).scalars().all()
        sources = conn.execute(select(subscriber_history.c.source)).scalars().all()
    assert KEY not in keys and AGENT not in agents
    assert "confirmation" in sources
    # a new send reaches her and its events are hers
    result = cli(site, "send", "2026-11-24", "--segment", "energy", "--yes", "--again")
    assert result.exit_code == 0, result.output
    assert post_events(client, site.key, [event("open", ADDRESS, "new-1", send=2)]
                       ).status_code == 200
    assert count(site, webhook_events, webhook_events.c.email_key == KEY) == 1


def test_suppression_sync_and_the_preference_page_store_nothing_for_an_erased_address(
        site: Site, sendgrid, tmp_path) -> None:
    from tests.web.public.test_preferences import csrf_of, path_of

    fake, lists = sendgrid
    assert imported(site, tmp_path).exit_code == 0
    path = path_of(site, ADDRESS)
    with make_client(site) as client:
        page = client.get(path)
        assert cli(site, "subscribers", "forget", ADDRESS, "--yes").exit_code == 0
        for action in ("save", "stop", "unsubscribe", "export"):
            client.post(path, data={"csrf": csrf_of(page.text), "action": action,
                                    "topic": "energy", "topics": "energy", "pause": "4"})
    lists.add("bounces", ADDRESS, int(time.time()))
    lists.groups[4242].append(ADDRESS)
    assert cli(site, "suppressions", "sync").exit_code == 0
    assert KEY not in everything(site) and site.status(ADDRESS) is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: vacuumed instead
def test_forget_leaves_no_byte_of_the_person_in_the_sqlite_files(site: Site, client,
                                                                 tmp_path) -> None:
    sent_to_her(site, client, tmp_path)
    post_form(client, {"email": "signs.up@example.com", "name": "Pending Person"})
    database = site.root.parent / ".newsletter" / "newsletter.db"
    files = [database, database.with_name(database.name + "-wal")]

    def raw() -> bytes:
        return b"".join(p.read_bytes() for p in files if p.exists()).lower()

    assert KEY.encode() in raw() and b"pending person" in raw()
    for who in (ADDRESS, "signs.up@example.com"):
        result = cli(site, "subscribers", "forget", who, "--yes")
        assert result.exit_code == 0 and "note:" not in result.output, result.output
    data = raw()
    for needle in (KEY, "leaving.reader", NAME.lower(), "signs.up@example.com",
                   "pending person", AGENT.lower()):
        assert needle.encode() not in data, needle
    assert re.search(rb"stays@example\.com", data)  # the rest is still there


def test_show_prints_the_pause_and_the_history_with_sources(site: Site, client,
                                                            tmp_path) -> None:
    assert imported(site, tmp_path).exit_code == 0
    with write_connection(site.engine) as conn, conn.begin():
        add_subscriber(conn, ADDRESS, tags=["cyber"], attributes={"org": "Example"})  # cli
        save_preferences(conn, ADDRESS, topics=["cyber", "energy"], chosen=["energy"],
                         pause=pause_until(4))  # page
    assert cli(site, "subscribers", "unsubscribe", ADDRESS).exit_code == 0
    result = cli(site, "subscribers", "show", ADDRESS, "--history")
    assert result.exit_code == 0, result.output
    until = dt.datetime.now(dt.UTC) + dt.timedelta(weeks=4)
    assert f"until {until:%Y-%m-%d}" in result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines]
    trail = [(r[1], r[2], r[3], r[4]) for r in rows if len(r) == 5 and r[1]]
    assert trail == [
        ("import", "status", "-", "active"),
        ("import", "tag", "-", "energy"),
        ("cli", "attribute", "-", "org=Example"),
        ("cli", "tag", "-", "cyber"),
        ("page", "tag", "cyber", "-"),
        ("page", "pause", "-", trail[5][3]),
        ("cli", "status", "active", "unsubscribed"),
    ]
    assert trail[5][3].startswith(f"{until:%Y-%m-%d}")
    plain = cli(site, "subscribers", "show", "stays@example.com")
    assert "history" not in plain.output and "paused" in plain.output


def test_webhook_status_changes_are_recorded_with_their_source(site: Site, client) -> None:
    with site.engine.begin() as conn:
        add_subscriber(conn, ADDRESS)
    assert post_events(client, site.key, [event("bounce", ADDRESS, "ev-b", type="bounce")]
                       ).status_code == 200
    assert site.status(ADDRESS) == "bounced"
    with site.engine.connect() as conn:
        trail = conn.execute(select(subscriber_history.c.source, subscriber_history.c.field,
                                    subscriber_history.c.before, subscriber_history.c.after)
                             .order_by(subscriber_history.c.id)).all()
    assert [tuple(r) for r in trail] == [("cli", "status", None, "active"),
                                         ("webhook", "status", "active", "bounced")]
