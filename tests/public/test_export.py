""""Download my data" holds everything the database holds about the person: after a whole life
(sign-up and consent, topics, an attribute, preference changes, a tracked send, webhook events
and a redirect click), the export is compared with a dump of every table for that person. A
table added later that holds a person's data and is missing from the export fails this test;
so does one nobody classified. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import Any

from click.testing import CliRunner
from sqlalchemy import String, Text, select

from newsletter.audience import get_subscriber
from newsletter.cli import main
from newsletter.core.tokens import link_token
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import metadata
from tests.public.conftest import (
    SECRET,
    Site,
    confirm_link,
    event,
    post_events,
    post_form,
)
from tests.public.test_preferences import csrf_of, path_of

ADDRESS = "whole.life@example.com"
OTHER = "someone.else@example.com"
#: tables that hold nothing about a person (asserted below: not even the address)
IMPERSONAL = {"schema_version", "sends", "send_links", "send_contents", "send_batches",
              "suppression_sync", "signup_throttle", "erased_addresses", "erasure_keys",
              # a send's frozen message (personalised only at hand-over), staff sign-offs,
              # providers' signature tokens, subject tests (their samples are personal)
              "send_artifacts", "approvals", "webhook_tokens", "subject_tests",
              "send_pauses"}  # the reputation guard's pauses: a send's figures
#: surrogate keys: numbers that mean nothing outside the database
SURROGATE = {"subscribers.id", "subscriber_history.id", "subscriber_history.subscriber_id",
             "subscriber_tags.subscriber_id", "send_recipients.id",
             "send_recipients.subscriber_id", "welcome_requests.subscriber_id",
             "subject_test_people.subscriber_id"}


def _leaves(value: Any) -> list[str]:
    """Every scalar in `value`, as comparable text."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _leaves(v)]
    if value is None:
        return []
    if isinstance(value, dt.datetime):
        return [value.isoformat(timespec="seconds").lower()]
    if isinstance(value, bool):
        return [str(value).lower()]
    return [str(value).lower()]


def _dump(site: Site, subscriber_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table that is about the person: by subscriber id, or with their
    address in a text column."""
    found: dict[str, list[dict[str, Any]]] = {}
    with site.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                values = dict(row._mapping)
                ids = [values.get("subscriber_id")]
                if table.name == "subscribers":
                    ids.append(values["id"])
                texts = [str(values[c.name]).lower() for c in table.columns
                         if isinstance(c.type, String | Text) and values[c.name] is not None]
                if subscriber_id in ids or any(ADDRESS in t for t in texts):
                    found.setdefault(table.name, []).append(values)
    return found


def _live_a_whole_life(site: Site, client) -> None:
    with open(site.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("tracking: {clicks: true}\nwelcome: {}\n")  # a welcome is asked for
    post_form(client, {"email": ADDRESS, "name": "Whole Life", "topics": ["energy", "cyber"]})
    client.post("/" + confirm_link(site.messages()[-1]).split("/", 3)[3])
    site.add(OTHER)
    run = CliRunner().invoke(main, ["-C", str(site.root), "subscribers", "add", ADDRESS,
                                    "--attr", "org=Example Institute", "--welcome"],
                             env=site.env)  # staff confirm it too: the welcome goes out
    assert run.exit_code == 0, run.output
    path = path_of(site, ADDRESS)
    page = client.get(path)
    client.post(path, data={"csrf": csrf_of(page.text), "action": "save", "topics": "energy",
                            "pause": "keep"})
    run = CliRunner().invoke(main, ["-C", str(site.root), "send", "2026-11-24", "--segment",
                                    "everyone", "--yes"], env=site.env)
    assert run.exit_code == 0, run.output
    # another issue, whose subjects are tested on everyone: the person is in the sample
    shutil.copytree(site.root / "issues" / "2026-11-24", site.root / "issues" / "2026-12-01")
    run = CliRunner().invoke(main, ["-C", str(site.root), "send", "2026-12-01", "--segment",
                                    "everyone", "--yes", "--sample", "100%", "--test-subjects",
                                    "Four experts on the week's policy news",
                                    "--test-subjects", "What policymakers missed this week"],
                             env=site.env)
    assert run.exit_code == 0, run.output
    with site.engine.connect() as conn:  # the welcome was send 1
        send = conn.execute(select(sends.c.id).where(sends.c.issue == "2026-11-24")).scalar_one()
    assert client.get(f"/c/{link_token(SECRET, send, 1, ADDRESS)}",
                      headers={"User-Agent": "Mozilla/5.0 Export-Test"}).status_code == 302
    assert post_events(client, site.key, [
        event("delivered", ADDRESS, "x-1", send=send),
        event("open", ADDRESS, "x-2", send=send, useragent="Mozilla/5.0 Mail",
              ip="203.0.113.7"),
        event("open", OTHER, "x-3", send=send),
    ]).status_code == 200


def test_the_export_holds_every_row_held_about_the_person(site: Site, client) -> None:
    _live_a_whole_life(site, client)
    with site.engine.connect() as conn:
        sid = get_subscriber(conn, ADDRESS).id
    path = path_of(site, ADDRESS)
    answer = client.post(path, data={"csrf": csrf_of(client.get(path).text),
                                     "action": "export"})
    assert answer.headers["content-disposition"].startswith("attachment")
    exported = json.loads(answer.text)
    assert OTHER not in answer.text
    leaves = set(_leaves(exported))
    dump = _dump(site, sid)
    tables = {t.name for t in metadata.sorted_tables}
    unclassified = tables - IMPERSONAL - set(dump)
    assert not unclassified, (f"{sorted(unclassified)}: no row about the person here; if the "
                              "table can hold a person's data, make this test's life fill it "
                              "and the export include it; if not, list it as IMPERSONAL")
    for name in IMPERSONAL & set(dump):
        raise AssertionError(f"{name} holds the person's data: export it and move it out of "
                             "IMPERSONAL")
    missing = []
    for name, rows in dump.items():
        for row in rows:
            for column, value in row.items():
                if f"{name}.{column}" in SURROGATE:
                    continue
                missing += [f"{name}.{column} = {leaf!r}" for leaf in _leaves(value)
                            if leaf not in leaves]
    assert missing == [], "held but not exported:\n" + "\n".join(missing)
    # what the page promises, by name
    assert exported["profile"]["consented"] and exported["signup"][0]["confirmed"]
    assert {e["event"] for e in exported["events"]} == {"click", "delivered", "open"}
    assert exported["engagement"][0]["opens"] == 1 and exported["engagement"][0]["clicks"] == 1
    assert exported["sends"][0]["provider_id"]
    assert {h["field"] for h in exported["history"]} >= {"status", "tag", "attribute"}
    assert exported["welcome"]["via"] == "cli"
    assert exported["subject_tests"][0]["issue"] == "2026-12-01"
