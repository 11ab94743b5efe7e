"""`newsletter suppressions sync` against the fake SendGrid server, and the sync a SendGrid send
runs first; `newsletter status` showing engagement per send."""

from __future__ import annotations

import datetime as dt
import time

from click.testing import CliRunner

from newsletter.cli import main
from newsletter.events.suppressions import sync_suppressions
from tests.web.public.conftest import GROUP, Site, event, make_client, post_events

DAY_AGO = int(time.time()) - 86400


def cli(site: Site, *args: str):
    return CliRunner().invoke(main, ["-C", str(site.root), *args], env=site.env)


def test_sync_pages_through_every_list_and_applies_it(site: Site, sendgrid) -> None:
    fake, lists = sendgrid
    for n in range(1200):  # three pages of bounces, only some of them subscribers
        lists.add("bounces", f"b{n:04d}@example.com", DAY_AGO + n)
    for name in ("b0000", "b0777", "b1199", "spam", "unsub", "invalid", "group", "fine"):
        site.add(f"{name}@example.com", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    lists.add("spam_reports", "spam@example.com", DAY_AGO)
    lists.add("unsubscribes", "UNSUB@example.com", DAY_AGO)
    lists.add("invalid_emails", "invalid@example.com", DAY_AGO)
    lists.groups[GROUP] = ["group@example.com", "stranger@example.com"]

    report = sync_suppressions(site.pub, site.engine)

    assert report.fetched == {"bounces": 1200, "spam_reports": 1, "unsubscribes": 1,
                              "invalid_emails": 1, f"group_{GROUP}": 2}
    assert report.changed == 7
    assert {k: v[0] for k, v in site.statuses().items()} == {
        "b0000@example.com": "bounced", "b0777@example.com": "bounced",
        "b1199@example.com": "bounced", "spam@example.com": "complained",
        "unsub@example.com": "unsubscribed", "invalid@example.com": "bounced",
        "group@example.com": "unsubscribed", "fine@example.com": "active"}
    pages = [q for kind, q in lists.queries if kind == "bounces"]
    assert [(q["limit"], q["offset"]) for q in pages] == [(500, 0), (500, 500), (500, 1000)]


def test_later_syncs_ask_only_for_new_entries(site: Site, sendgrid) -> None:
    fake, lists = sendgrid
    site.add("old@example.com", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    site.add("new@example.com", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    lists.add("bounces", "old@example.com", DAY_AGO)
    assert sync_suppressions(site.pub, site.engine).changed == 1
    lists.queries.clear()
    assert sync_suppressions(site.pub, site.engine).changed == 0  # syncing twice: no change
    assert all(q["start_time"] == DAY_AGO for kind, q in lists.queries if kind == "bounces")
    lists.add("spam_reports", "new@example.com", DAY_AGO + 60)
    assert sync_suppressions(site.pub, site.engine).changed == 1
    assert site.status("new@example.com") == "complained"
    full = sync_suppressions(site.pub, site.engine, full=True)
    assert full.fetched["bounces"] == 1 and full.changed == 0


def test_an_entry_older_than_a_confirmed_resubscribe_is_not_applied(site: Site,
                                                                     sendgrid) -> None:
    fake, lists = sendgrid
    site.add("back@example.com", consented=dt.datetime.now(dt.UTC))  # confirmed a sign-up now
    lists.add("unsubscribes", "back@example.com", DAY_AGO)
    assert sync_suppressions(site.pub, site.engine).changed == 0
    assert site.status("back@example.com") == "active"


def test_cli_sync_and_its_errors(site: Site, sendgrid, monkeypatch) -> None:
    fake, lists = sendgrid
    site.add("spam@example.com", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    lists.add("spam_reports", "spam@example.com", DAY_AGO)
    result = cli(site, "suppressions", "sync")
    assert result.exit_code == 0, result.output
    assert "1 spam reports" in result.output and "1 subscriber(s) changed" in result.output
    assert site.status("spam@example.com") == "complained"

    site.env["SENDGRID_API_KEY"] = "SG.wrong"
    refused = cli(site, "suppressions", "sync")
    assert refused.exit_code == 1
    assert "SendGrid answered 401" in refused.output and "Traceback" not in refused.output
    del site.env["SENDGRID_API_KEY"]
    monkeypatch.delenv("SENDGRID_API_KEY")
    missing = cli(site, "suppressions", "sync")
    assert missing.exit_code == 2 and "SENDGRID_API_KEY is not set" in missing.output


def test_a_sendgrid_send_syncs_first_and_status_shows_engagement(site: Site, sendgrid) -> None:
    fake, lists = sendgrid
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    for name in ("ann", "bob", "cat"):
        site.add(f"{name}@example.com", changed=long_ago)
    lists.add("bounces", "cat@example.com", DAY_AGO)

    sent = cli(site, "send", "2026-11-24", "--segment", "everyone", "--transport", "sendgrid",
               "--yes")
    assert sent.exit_code == 0, sent.output
    assert "suppressions synced" in sent.output
    assert sorted(d.email for d in fake.deliveries) == ["ann@example.com", "bob@example.com"]
    assert site.status("cat@example.com") == "bounced"
    send_id = int(fake.deliveries[0].custom_args["nl_send"])

    with make_client(site) as client:
        answer = post_events(client, site.key, [
            event("delivered", "ann@example.com", "d1", send=send_id),
            event("delivered", "bob@example.com", "d2", send=send_id),
            event("open", "ann@example.com", "o1", send=send_id),
            event("open", "ann@example.com", "o2", send=send_id),
            event("click", "ann@example.com", "c1", send=send_id),
            event("spamreport", "bob@example.com", "s1", send=send_id),
        ])
    assert answer.json()["applied"] == 6
    status = cli(site, "status", "2026-11-24")
    assert status.exit_code == 0, status.output
    assert ("events: 2 delivered, 2 opens (1 unique), 1 clicks (1 unique), 0 bounces, "
            "1 complaints, 0 unsubscribes") in status.output
