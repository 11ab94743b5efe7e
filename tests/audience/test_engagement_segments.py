"""Engagement conditions in segments (`opened`, `clicked`, `engaged_within`) compiled to SQL
agree with a plain Python evaluation over the same events, on SQLite and PostgreSQL, alone and
nested in `all`/`any`/`none` with tag and attribute conditions and `segment:` references, and
for several segments at once (a send to two segments); and `subscribers sunset` tags or
unsubscribes exactly the people without human engagement."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, update

from newsletter.audience import Segments, add_subscriber
from newsletter.audience.engaged import refresh_engaged
from newsletter.audience.engagement import sunset
from newsletter.cli import main
from newsletter.core.errors import InputError
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import send_links, subscriber_tags, subscribers, webhook_events

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PEOPLE = ["ann", "bob", "cat", "dan", "eve"]
TAGS = {"ann": ["cyber"], "bob": ["cyber", "staff"], "cat": [], "dan": ["staff"], "eve": []}
ROLE = {"ann": "press", "bob": "press", "cat": "academic", "dan": None, "eve": "press"}
ISSUES = {1: "2026-11-24", 2: "2026-12-01"}  # send id -> issue
PIECE_OF = {1: 0, 2: 1, 3: 1, 4: 2, 5: 0}  # link position -> piece (same in both sends)


@pytest.fixture()
def world(engine: Engine) -> Engine:
    with engine.begin() as conn:
        for name in PEOPLE:
            add_subscriber(conn, f"{name}@example.org", name=name.title())
        for send_id, issue in ISSUES.items():
            conn.execute(insert(sends).values(
                id=send_id, issue=issue, segment="everyone", transport="outbox",
                content_hash="0" * 64, subject="S", state="completed", total=5, accepted=5,
                failed=0, unknown=0, batches=1, created_at=NOW, updated_at=NOW))
            conn.execute(insert(send_links), [
                {"send_id": send_id, "position": p, "piece": piece, "link": p, "title": "",
                 "expert": "", "url": f"https://example.org/{p}"} for p, piece in PIECE_OF.items()])
    return engine


@pytest.fixture()
def tagged(world: Engine) -> Engine:
    """The world's people with tags (TAGS) and a role (ROLE)."""
    with world.begin() as conn:
        for name in PEOPLE:
            add_subscriber(conn, f"{name}@example.org", tags=TAGS[name],
                           attributes={"role": ROLE[name]} if ROLE[name] else None)
    return world


event_st = st.tuples(st.sampled_from(PEOPLE), st.sampled_from(sorted(ISSUES)),
                     st.sampled_from(["open", "click", "delivered"]), st.booleans(),
                     st.sampled_from(sorted(PIECE_OF)), st.integers(0, 400))
leaf_st = st.one_of(
    st.builds(lambda i: {"opened": ISSUES[i]}, st.sampled_from(sorted(ISSUES))),
    st.builds(lambda i: {"clicked": ISSUES[i]}, st.sampled_from(sorted(ISSUES))),
    st.builds(lambda i, p: {"clicked": {"issue": ISSUES[i], "piece": p}},
              st.sampled_from(sorted(ISSUES)), st.integers(0, 3)),
    st.builds(lambda d: {"engaged_within": f"{d}d"}, st.integers(1, 400)),
    st.builds(lambda w: {"engaged_within": f"{w}w"}, st.integers(1, 50)),
)
row_st = st.one_of(  # conditions on the subscriber's own row, mixed in
    st.builds(lambda t: {"tag": t}, st.sampled_from(["cyber", "staff"])),
    st.builds(lambda r: {"attr": {"role": r}}, st.sampled_from(["press", "academic"])),
)
rule_st = st.recursive(st.one_of(leaf_st, leaf_st, row_st), lambda inner: st.builds(
    lambda k, items: {k: items}, st.sampled_from(["all", "any", "none"]),
    st.lists(inner, min_size=1, max_size=3)), max_leaves=6)


def reference(rule: dict[str, Any], person: str, events: list[tuple]) -> bool:
    """The plain evaluation: human events only."""
    human = [e for e in events if e[0] == person and not e[3]]
    results = []
    for key, arg in rule.items():
        if key == "segment":
            results.append(reference(OTHER, person, events))
        elif key == "tag":
            results.append(arg in TAGS[person])
        elif key == "attr":
            results.append(ROLE[person] == arg["role"])
        elif key in ("all", "any", "none"):
            found = [reference(r, person, events) for r in arg]
            results.append(all(found) if key == "all" else any(found) if key == "any"
                           else not any(found))
        elif key == "opened":
            results.append(any(e[2] == "open" and ISSUES[e[1]] == arg for e in human))
        elif key == "clicked":
            spec = arg if isinstance(arg, dict) else {"issue": arg}
            results.append(any(e[2] == "click" and ISSUES[e[1]] == spec["issue"]
                               and spec.get("piece") in (None, PIECE_OF[e[4]]) for e in human))
        elif key == "engaged_within":
            days = int(arg[:-1]) * (7 if arg.endswith("w") else 1)
            results.append(any(e[2] in ("open", "click")
                               and e[5] <= days for e in human))
    return all(results)


#: A segment the rules may refer to: engagement inside `none`, beside a tag.
OTHER = {"any": [{"tag": "staff"}, {"none": [{"engaged_within": "30d"}]}]}


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(event_st, max_size=14), rule=rule_st, also=rule_st,
       refer=st.booleans())
def test_engagement_conditions_match_a_plain_evaluation(tagged: Engine, tmp_path: Path,
                                                         events: list[tuple], rule: dict,
                                                         also: dict, refer: bool) -> None:
    with tagged.begin() as conn:
        conn.execute(delete(webhook_events))
        if events:
            conn.execute(insert(webhook_events), [
                {"sg_event_id": f"e{n}", "event": kind, "email_key": f"{who}@example.org",
                 "send_id": send_id,  # an hour inside the day: no ties with the test's clock
                 "occurred_at": NOW - dt.timedelta(days=age) + dt.timedelta(hours=1),
                 "received_at": NOW, "machine": machine,
                 "position": position if kind == "click" else None}
                for n, (who, send_id, kind, machine, position, age) in enumerate(events)])
        refresh_engaged(conn)  # a bulk load: every subscriber's last human engagement
    path = tmp_path / "subscribers" / "segments.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if refer:  # nested one level down, through a reference
        also = {"any": [also, {"segment": "other"}]}
    path.write_text(yaml.safe_dump({"segments": {"picked": rule, "also": also, "other": OTHER}}),
                    encoding="utf-8")
    segments = Segments.load(tmp_path)

    def members(names: str | list[str]) -> set[str]:
        with tagged.connect() as conn:
            return {key.split("@")[0] for key in conn.execute(
                select(subscribers.c.email_key).where(segments.condition(names))).scalars()}

    picked = {p for p in PEOPLE if reference(rule, p, events)}
    assert members("picked") == picked, rule
    both = picked | {p for p in PEOPLE if reference(also, p, events)}
    assert members(["picked", "also"]) == both, (rule, also)


@pytest.mark.parametrize("rule, message", [
    ("{opened: 17}", "'opened' needs an issue slug"),
    ("{engaged_within: soon}", "'engaged_within' needs a period like 90d"),
    ("{clicked: {issue: 2026-11-24, piece: two}}", "'piece' must be a piece number"),
    ("{clicked: {piece: 2}}", "'clicked' takes an issue"),
])
def test_bad_engagement_conditions_name_file_and_line(tmp_path: Path, rule: str,
                                                       message: str) -> None:
    path = tmp_path / "subscribers" / "segments.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"segments:\n  everyone: {{}}\n  bad: {rule}\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        Segments.load(tmp_path)
    assert f"segments.yaml:3: {message}" in str(caught.value) or (
        message in str(caught.value) and ":3" in str(caught.value))


def test_sunset_tags_or_unsubscribes_those_without_human_engagement(world: Engine) -> None:
    old = NOW - dt.timedelta(days=500)
    with world.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.email_key != "eve@example.org")
                     .values(created_at=old))  # eve joined recently: never sunset
        conn.execute(insert(webhook_events), [
            {"sg_event_id": "a", "event": "click", "email_key": "ann@example.org", "send_id": 1,
             "occurred_at": NOW - dt.timedelta(days=10), "received_at": NOW, "machine": False},
            {"sg_event_id": "b", "event": "open", "email_key": "bob@example.org", "send_id": 1,
             "occurred_at": NOW - dt.timedelta(days=10), "received_at": NOW, "machine": True},
            {"sg_event_id": "c", "event": "open", "email_key": "cat@example.org", "send_id": 1,
             "occurred_at": NOW - dt.timedelta(days=400), "received_at": NOW, "machine": False},
        ])
        refresh_engaged(conn)
    with world.begin() as conn:
        result = sunset(conn, dt.timedelta(days=365), dry_run=True)
    assert (result.matched, result.dry_run) == (3, True)  # bob (machine only), cat, dan
    with world.connect() as conn:
        assert conn.execute(select(subscriber_tags)).all() == []
    with world.begin() as conn:
        assert sunset(conn, dt.timedelta(days=365)).matched == 3
    with world.begin() as conn:
        assert sunset(conn, dt.timedelta(days=365)).matched == 0  # tagged once only
        tagged = conn.execute(select(subscribers.c.email_key).join(
            subscriber_tags, subscriber_tags.c.subscriber_id == subscribers.c.id)
            .where(subscriber_tags.c.tag == "inactive")).scalars().all()
    assert sorted(k.split("@")[0] for k in tagged) == ["bob", "cat", "dan"]
    with world.begin() as conn:
        assert sunset(conn, dt.timedelta(days=365), unsubscribe=True).matched == 3
        statuses = dict(conn.execute(select(subscribers.c.email_key, subscribers.c.status)).all())
    assert {k.split("@")[0]: v for k, v in statuses.items()} == {
        "ann": "active", "bob": "unsubscribed", "cat": "unsubscribed", "dan": "unsubscribed",
        "eve": "active"}


def test_sunset_command_says_how_many(world: Engine, db_url: str, publication: Path) -> None:
    with world.begin() as conn:
        conn.execute(update(subscribers).values(created_at=NOW - dt.timedelta(days=500)))
    env = {"NEWSLETTER_DATABASE_URL": db_url}
    run = CliRunner().invoke(main, ["-C", str(publication), "subscribers", "sunset",
                                    "--inactive", "365d", "--dry-run"], env=env)
    assert run.exit_code == 0, run.output
    assert "5 subscriber(s) would be tagged 'inactive' (dry run: nothing changed)." in run.output
    run = CliRunner().invoke(main, ["-C", str(publication), "subscribers", "sunset",
                                    "--inactive", "52w", "--unsubscribe"], env=env)
    assert "5 subscriber(s) unsubscribed." in run.output
    run = CliRunner().invoke(main, ["-C", str(publication), "subscribers", "sunset",
                                    "--inactive", "soon"], env=env)
    assert run.exit_code == 2 and "'soon' is not a period like 365d" in run.output
