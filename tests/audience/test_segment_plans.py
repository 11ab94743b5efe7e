"""Engagement and tag conditions are sets computed once per query, not probes per subscriber:
EXPLAIN on both databases, for the condition alone, inside `any`, inside `none`, nested, and
for two segments sent to at once. PostgreSQL: every SubPlan is hashed (or there is none: a hash or
merge join); SQLite: the set is a LIST SUBQUERY or a materialised table searched by index,
never a CORRELATED subquery. `engaged_within` is no set at all: mixed with row conditions (as
in `alone`, `in-any` and `row-nested`), the plan reads `subscribers` alone, once, without any
join or subquery, and never `webhook_events`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, func, insert, select, text

from newsletter.audience import Segments, iter_subscribers
from newsletter.audience.engaged import refresh_engaged
from newsletter.core.yamlsrc import parse_yaml
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import send_links, subscriber_tags, subscribers

PEOPLE = 3000
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
RULES = {
    "alone": {"engaged_within": "90d"},
    "in-any": {"any": [{"engaged_within": "30d"}, {"attr": {"role": "press"}}]},
    "in-none": {"all": [{"attr": {"role": "press"}}],
                "none": [{"opened": "2026-11-24"}, {"clicked": "2026-11-24"}]},
    "nested": {"any": [{"all": [{"attr": {"role": "press"}}, {"engaged_within": "14d"}]},
                       {"none": [{"clicked": {"issue": "2026-11-24", "piece": 1}}]}]},
    "tags": {"any": [{"tag": "cyber"}, {"tag": "tech"}]},
    "tags-none": {"all": [{"segment": "tags"}], "none": [{"tag": "staff"}]},
    "tag-in-any": {"any": [{"tag": "staff"}, {"attr": {"role": "staff"}}],
                   "none": [{"any": [{"tag": "cyber"}, {"opened": "2026-11-24"}]}]},
    "row-nested": {"any": [{"all": [{"attr": {"role": "press"}}, {"engaged_within": "14d"}]},
                           {"none": [{"engaged_within": "60d"}]}]},
    "tag-engaged": {"any": [{"all": [{"tag": "cyber"}, {"engaged_within": "14d"}]},
                            {"none": [{"engaged_within": "60d"}]}]},
}
#: Rules of row conditions only (engaged_within among them): a plain scan of subscribers.
ROW_ONLY = ("alone", "in-any", "row-nested")


@pytest.fixture()
def crowd(engine: Engine) -> Engine:
    """PEOPLE subscribers, one send, opens and clicks of a third of them; analysed."""
    with engine.begin() as conn:
        conn.execute(insert(subscribers), [
            {"email": f"p{i}@example.org", "email_key": f"p{i}@example.org", "name": "",
             "status": "active", "attributes": {"role": "press" if i % 4 else "staff"},
             "source": "test", "created_at": NOW, "updated_at": NOW,
             "status_changed_at": NOW} for i in range(PEOPLE)])
        conn.execute(insert(sends).values(
            id=1, issue="2026-11-24", segment="everyone", transport="outbox",
            content_hash="0" * 64, subject="S", state="completed", total=PEOPLE,
            accepted=PEOPLE, failed=0, unknown=0, batches=1, created_at=NOW, updated_at=NOW))
        conn.execute(insert(send_links), [
            {"send_id": 1, "position": p, "piece": p % 3, "link": p, "title": "", "expert": "",
             "url": f"https://example.org/{p}"} for p in range(1, 6)])
        ids = conn.execute(select(subscribers.c.id, subscribers.c.email_key)).all()
        conn.execute(insert(subscriber_tags), [
            {"subscriber_id": sid, "tag": tag} for sid, _ in ids
            for n, tag in enumerate(("cyber", "tech", "staff")) if sid % (n + 2) == 0])
        conn.execute(text(
            "INSERT INTO webhook_events (sg_event_id, event, email_key, send_id, occurred_at, "
            "received_at, machine, position) VALUES (:sg, :event, :key, 1, :at, :at, :m, :pos)"),
            [{"sg": f"{kind}{sid}", "event": kind, "key": key, "m": sid % 7 == 0,
              "at": (NOW - dt.timedelta(days=sid % 60)).replace(tzinfo=None),
              "pos": 1 + sid % 5 if kind == "click" else None}
             for sid, key in ids for kind in ("open", "click") if sid % 3 == 0])
        refresh_engaged(conn)  # a bulk load: every subscriber's last human engagement
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return engine


def plan(engine: Engine, query) -> list[str]:
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        return [" ".join(str(c) for c in row) for row in conn.exec_driver_sql(explain + sql)]


def subplans(found: list[str]) -> dict[str, list[str]]:
    """PostgreSQL plan: each SubPlan's name (`SubPlan 2`) and the lines of its body."""
    bodies: dict[str, list[str]] = {}
    for i, line in enumerate(found):
        if line.strip().startswith("SubPlan"):
            depth = len(line) - len(line.lstrip())
            body = []
            for below in found[i + 1:]:
                if len(below) - len(below.lstrip()) <= depth:
                    break
                body.append(below)
            bodies[line.strip()] = body
    return bodies


def reads_of_subscribers(found: list[str]) -> int:
    """How many scans of `subscribers` a plan (either database's) makes."""
    return sum(any(f"{verb} subscribers " in f"{line} " for verb in ("on", "SCAN", "SEARCH"))
               for line in found)


def looks_up_a_key(body: list[str]) -> bool:
    """A SubPlan that reads subscriber_tags through an index by the subscriber's own id."""
    return any(line.lstrip().startswith("->") and "Index" in line and "on subscriber_tags" in line
               for line in body) and \
        any("Index Cond:" in line and "subscriber_id = subscribers.id" in line for line in body)


def rescans(found: list[str]) -> list[str]:
    """SubPlans run per subscriber over more than one index entry: neither hashed (the set
    computed once) nor a look-up of the subscriber's own id in an index of subscriber_tags
    (a tag deep in `any` or `none`)."""
    text_ = "\n".join(found)
    bad = []
    for name, body in subplans(found).items():
        if f"hashed {name}" in text_:
            continue
        if looks_up_a_key(body):
            continue
        bad.append(name)
    return bad


def segments_of(tmp_path: Path) -> Segments:
    text_ = yaml.safe_dump({"segments": RULES})
    return Segments.from_doc(parse_yaml(text_, tmp_path / "segments.yaml"))


@pytest.mark.parametrize("names", [*[[n] for n in RULES], ["in-any", "in-none"]],
                         ids=[*RULES, "two-segments"])
def test_engagement_sets_are_computed_once(crowd: Engine, tmp_path: Path,
                                           names: list[str]) -> None:
    segments = segments_of(tmp_path)
    condition = segments.condition(names)
    found: list[str] = []
    for query in (select(func.count()).select_from(subscribers).where(condition),
                  select(subscribers.c.id).where(condition)):
        found = plan(crowd, query)
        text_ = "\n".join(found)
        if names[0] in (*ROW_ONLY, "tag-engaged") and len(names) == 1:
            assert "webhook_events" not in text_, text_  # a column, not a set of events
        if names[0] in ROW_ONLY and len(names) == 1:
            assert len([line for line in found if "subscribers" in line]) == 1, text_
            assert not any(w in text_ for w in ("Join", "SubPlan", "SUBQUERY", "SEARCH",
                                                "Nested Loop", "Hash")), text_
            continue
        if crowd.dialect.name == "postgresql":
            assert not rescans(found), text_
            assert "Hash" in text_ or "Merge" in text_ or "hashed SubPlan" in text_, text_
        else:
            assert "CORRELATED" not in text_, text_
            assert "LIST SUBQUERY" in text_ or "INDEX" in text_, text_
        if names == ["tag-engaged"]:  # a tag deep in `any` with row tests: one pass
            assert reads_of_subscribers(found) == 1, text_
    with crowd.connect() as conn:  # and it selects what it should
        expected = set()
        for name in names:
            expected |= set(conn.execute(select(subscribers.c.id).where(
                segments.condition(name))).scalars())
        assert set(conn.execute(select(subscribers.c.id).where(condition)).scalars()) == \
            expected
        assert 0 < len(expected) < PEOPLE


BIG_SET = {"any": [{"all": [{"attr": {"role": "press"}},
                            {"any": [{"tag": "cyber"}, {"tag": "tech"}, {"tag": "staff"}]}]},
                   {"none": [{"tag": "tech"}]}]}


@pytest.mark.parametrize(  # SQLite computes the set once (LIST SUBQUERY), asserted above
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_tag_set_too_big_to_hash_is_looked_up_by_key(crowd: Engine, tmp_path: Path) -> None:
    """PostgreSQL, a tag deep in `any`/`none` whose set does not fit in `hash_mem`: each
    subscriber's membership is one look-up of their id in an index of subscriber_tags (not
    a rescan of the set), after the row tests; the members are the same as when it is
    hashed, and as the plain-Python reference's."""
    segments = Segments.from_doc(parse_yaml(yaml.safe_dump({"segments": {"big": BIG_SET}}),
                                            tmp_path / "segments.yaml"))
    query = select(subscribers.c.id).where(segments.condition("big"))
    sql = str(query.compile(crowd, compile_kwargs={"literal_binds": True}))
    found: dict[str, set[int]] = {}
    for work_mem in ("64kB", "4MB"):
        with crowd.connect() as conn:
            conn.exec_driver_sql(f"SET work_mem = '{work_mem}'")
            conn.exec_driver_sql("SET hash_mem_multiplier = 1")
            lines = [row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql)]
            found[work_mem] = set(conn.execute(query).scalars())
        text_ = "\n".join(lines)
        assert not rescans(lines), text_
        assert reads_of_subscribers(lines) == 1, text_
        if work_mem == "64kB":  # the three tags' set (3,250 rows) is looked up by key
            probes = ["\n".join(body) for body in subplans(lines).values()
                      if looks_up_a_key(body)]
            assert any("{cyber,staff,tech}" in body for body in probes), text_
    everyone = list(iter_subscribers(crowd))
    assert found["64kB"] == found["4MB"] == \
        {s.id for s in everyone if segments.matches("big", s)}
    assert 0 < len(found["64kB"]) < PEOPLE
