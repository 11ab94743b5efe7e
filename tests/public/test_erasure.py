"""`subscribers forget`, the erasure list, `show --history` and pause in `show`, on SQLite and
PostgreSQL: after erasure no table holds the address, the ledger's counts stand, imports and
`subscribers add` refuse it with the reason, and only the person's confirmed sign-up clears it."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from newsletter.audience import add_subscriber
from newsletter.audience.preferences import pause_until, save_preferences
from newsletter.cli import main
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import erased_addresses, metadata, subscriber_history
from tests.public.conftest import Site, confirm_link, event, post_events, post_form

ADDRESS = "Leaving.Reader@example.com"


def cli(site: Site, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["-C", str(site.root), *args], env=site.env, input=input,
                              catch_exceptions=False)


def everything(site: Site) -> str:
    """Every row of every table, as text."""
    found = []
    with site.engine.connect() as conn:
        for table in metadata.sorted_tables:
            found += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(found).lower()


def imported(site: Site, tmp_path) -> Result:
    csv = tmp_path / "people.csv"
    csv.write_text(f"email,name,tags\n{ADDRESS},Leaving Reader,energy\n"
                   "stays@example.com,Stays,energy\n", encoding="utf-8")
    return cli(site, "subscribers", "import", str(csv))


@pytest.mark.slow
def test_forget_erases_everywhere_keeps_counts_and_refuses_reimport(site: Site, client,
                                                                    tmp_path) -> None:
    assert imported(site, tmp_path).exit_code == 0
    assert cli(site, "send", "2026-11-24", "--segment", "energy", "--yes").exit_code == 0
    assert post_events(client, site.key, [event("open", ADDRESS, "ev-1", send=1)]
                       ).status_code == 200
    assert ADDRESS.lower() in everything(site)
    with site.engine.connect() as conn:
        counts = conn.execute(select(sends.c.total, sends.c.accepted)).one()

    result = cli(site, "subscribers", "forget", ADDRESS, "--yes")
    assert result.exit_code == 0, result.output
    assert "1 send-ledger rows kept" in result.output
    assert ADDRESS.lower() not in everything(site)
    with site.engine.connect() as conn:
        assert conn.execute(select(sends.c.total, sends.c.accepted)).one() == counts
        assert conn.execute(select(func.count()).select_from(send_recipients)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(erased_addresses)).scalar() == 1
    assert site.status("stays@example.com") == "active"  # nobody else touched

    again = imported(site, tmp_path)
    assert again.exit_code == 1
    assert "erased at the person's request" in again.output
    assert site.status(ADDRESS) is None
    add = cli(site, "subscribers", "add", ADDRESS.upper())
    assert add.exit_code == 2
    assert "erased at the person's request" in add.output
    assert site.status(ADDRESS) is None


def test_a_confirmed_sign_up_by_the_person_clears_the_erasure(site: Site, client,
                                                              tmp_path) -> None:
    assert imported(site, tmp_path).exit_code == 0
    assert cli(site, "subscribers", "forget", ADDRESS, "--yes").exit_code == 0
    response = post_form(client, {"email": ADDRESS, "topics": "energy"})
    assert response.status_code == 200
    assert site.status(ADDRESS) is None  # a request is not yet a subscription
    link = confirm_link(site.messages()[-1])
    client.post("/" + link.split("/", 3)[3])
    assert site.status(ADDRESS) == "active"
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(erased_addresses)).scalar() == 0
        sources = conn.execute(select(subscriber_history.c.source)).scalars().all()
    assert "confirmation" in sources
    assert imported(site, tmp_path).exit_code == 0


def test_forget_asks_first_and_no_changes_nothing(site: Site, tmp_path) -> None:
    assert imported(site, tmp_path).exit_code == 0
    result = cli(site, "subscribers", "forget", ADDRESS, input="n\n")
    assert result.exit_code == 1
    assert site.status(ADDRESS) == "active"
    unknown = cli(site, "subscribers", "forget", "nobody@example.com", "--yes")
    assert unknown.exit_code == 2 and "no such subscriber" in unknown.output


def test_show_prints_the_pause_and_the_history_with_sources(site: Site, client,
                                                            tmp_path) -> None:
    assert imported(site, tmp_path).exit_code == 0
    with site.engine.begin() as conn:
        add_subscriber(conn, ADDRESS, tags=["cyber"])  # cli
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
        ("cli", "tag", "-", "cyber"),
        ("page", "tag", "cyber", "-"),
        ("page", "pause", "-", trail[4][3]),
        ("cli", "status", "active", "unsubscribed"),
    ]
    assert trail[4][3].startswith(f"{until:%Y-%m-%d}")
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
