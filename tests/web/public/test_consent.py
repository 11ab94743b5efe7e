"""Only consent re-activates: the sync retires an address whatever its import time; a confirmed
sign-up after the suppression brings it back and takes it off SendGrid's lists; confirmation
links work once; the status ladder holds on every path, the CLI included."""

from __future__ import annotations

import datetime as dt
import time

from click.testing import CliRunner

from newsletter.audience import import_csv
from newsletter.cli import main
from newsletter.events.optin import Limits
from newsletter.events.suppressions import sync_suppressions
from tests.web.public.conftest import GROUP, Site, confirm_link, make_client, post_form

YEAR_AGO = int(time.time()) - 365 * 86400


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def _import(site: Site, *emails: str) -> None:
    path = site.root / "people.csv"
    path.write_text("email,name\n" + "".join(f"{e},Reader\n" for e in emails), encoding="utf-8")
    assert import_csv(site.engine, path).added == len(emails)


def test_sync_retires_addresses_whose_suppression_predates_their_import(site: Site,
                                                                        sendgrid) -> None:
    fake, lists = sendgrid
    lists.add("bounces", "bounce@example.com", YEAR_AGO)
    lists.add("spam_reports", "spam@example.com", YEAR_AGO)
    lists.add("unsubscribes", "unsub@example.com", YEAR_AGO)
    lists.groups[GROUP] = ["group@example.com"]
    _import(site, "bounce@example.com", "spam@example.com", "unsub@example.com",
            "group@example.com", "fine@example.com")  # imported today, suppressed a year ago
    report = sync_suppressions(site.pub, site.engine)
    assert report.changed == 4
    assert {k: v[0] for k, v in site.statuses().items()} == {
        "bounce@example.com": "bounced", "spam@example.com": "complained",
        "unsub@example.com": "unsubscribed", "group@example.com": "unsubscribed",
        "fine@example.com": "active"}
    _import(site, "late@example.com")
    lists.add("bounces", "late@example.com", YEAR_AGO)  # a re-import changes nothing either
    assert sync_suppressions(site.pub, site.engine, full=True).changed == 1
    assert site.status("late@example.com") == "bounced"


def test_a_confirmed_signup_after_the_suppression_brings_it_back_everywhere(
        site: Site, sendgrid, client) -> None:
    fake, lists = sendgrid
    for kind in ("bounces", "unsubscribes", "spam_reports"):
        lists.add(kind, "back@example.com", YEAR_AGO)
    lists.groups[GROUP] = ["back@example.com", "other@example.com"]
    lists.add("bounces", "other@example.com", YEAR_AGO)
    _import(site, "back@example.com", "other@example.com")
    sync_suppressions(site.pub, site.engine)
    assert site.status("back@example.com") == "complained"

    assert post_form(client, {"email": "back@example.com"}).status_code == 200
    assert site.status("back@example.com") == "complained"  # a request is not consent
    [message] = site.messages()
    link = _path(confirm_link(message))
    assert client.get(link).status_code == 200  # a GET (mail scanners) changes nothing
    assert site.status("back@example.com") == "complained" and fake.requests == [
        r for r in fake.requests if r[0] == "GET"]
    assert client.post(link).status_code == 200
    assert site.status("back@example.com") == "active"
    deleted = {(kind, email, status) for kind, email, status in lists.deleted}
    assert deleted == {("bounces", "back@example.com", 204),
                       ("spam_reports", "back@example.com", 204),
                       ("unsubscribes", "back@example.com", 204),
                       (f"group_{GROUP}", "back@example.com", 204)}
    assert "back@example.com" not in lists.emails("bounces") | lists.emails(f"group_{GROUP}")
    assert "other@example.com" in lists.emails("bounces") & lists.emails(f"group_{GROUP}")
    # the old entries (if SendGrid still had them) predate the consent: a full sync keeps it
    lists.add("unsubscribes", "back@example.com", YEAR_AGO)
    assert sync_suppressions(site.pub, site.engine, full=True).changed == 0
    assert site.status("back@example.com") == "active"
    # ...but news after the consent still counts
    lists.add("bounces", "back@example.com", int(time.time()) + 5)
    assert sync_suppressions(site.pub, site.engine, full=True).changed == 1
    assert site.status("back@example.com") == "bounced"


def test_a_pipe_address_is_released_too(site: Site, sendgrid, client) -> None:
    fake, lists = sendgrid
    lists.add("bounces", "a|b@example.com", YEAR_AGO)
    post_form(client, {"email": "a|b@example.com"})
    [message] = site.messages()
    assert client.post(_path(confirm_link(message))).status_code == 200
    assert site.status("a|b@example.com") == "active"
    assert ("bounces", "a|b@example.com", 204) in lists.deleted


def test_confirmation_replay_after_unsubscribe_changes_nothing(site: Site) -> None:
    with make_client(site, limits=Limits(address_gap_s=0)) as client:
        post_form(client, {"email": "replay@example.com", "name": "Rita"})
        [message] = site.messages()
        link = _path(confirm_link(message))
        assert "You are subscribed" in client.post(link).text
        assert site.status("replay@example.com") == "active"
        assert client.post(site.unsubscribe_path("replay@example.com")).status_code == 200
        assert site.status("replay@example.com") == "unsubscribed"
        before = site.statuses()
        again = client.post(link)
        assert again.status_code == 200 and "Already confirmed" in again.text
        assert site.statuses() == before
        # a new request brings a new link, which works once
        post_form(client, {"email": "replay@example.com"})
        [fresh] = [p for p in (_path(confirm_link(m)) for m in site.messages()) if p != link]
        assert "You are subscribed" in client.post(fresh).text
        assert site.status("replay@example.com") == "active"
        assert "Already confirmed" in client.post(fresh).text


def test_cli_unsubscribe_never_downgrades_a_stronger_status(site: Site) -> None:
    site.add("bounced@example.com", "bounced")
    site.add("complained@example.com", "complained")
    site.add("active@example.com")
    for address, shown in (("bounced@example.com", "stays bounced"),
                           ("complained@example.com", "stays complained"),
                           ("active@example.com", "unsubscribed active@example.com")):
        result = CliRunner().invoke(main, ["-C", str(site.root), "subscribers", "unsubscribe",
                                           address], env=site.env)
        assert result.exit_code == 0, result.output
        assert shown in result.output
    assert {k: v[0] for k, v in site.statuses().items()} == {
        "bounced@example.com": "bounced", "complained@example.com": "complained",
        "active@example.com": "unsubscribed"}


def test_cli_add_resubscribe_is_consent_through_the_ladder(site: Site) -> None:
    site.add("gone@example.com", "complained",
             changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    plain = CliRunner().invoke(main, ["-C", str(site.root), "subscribers", "add",
                                      "gone@example.com"], env=site.env)
    assert plain.exit_code == 0 and site.status("gone@example.com") == "complained"
    back = CliRunner().invoke(main, ["-C", str(site.root), "subscribers", "add",
                                     "gone@example.com", "--resubscribe"], env=site.env)
    assert back.exit_code == 0 and site.status("gone@example.com") == "active"
    show = CliRunner().invoke(main, ["-C", str(site.root), "subscribers", "show",
                                     "gone@example.com"], env=site.env)
    assert "never" not in show.output.split("consented")[1].splitlines()[0]
