"""Segments mean what they say: for random subscribers and random nested rules, the SQL the
rules compile to selects exactly the subscribers a plain Python evaluation of the rule picks,
on SQLite and on PostgreSQL. Missing attributes and tags are the point: a positive condition
never matches them, and `none` of it does.

Size per database: SUBSCRIBERS (up to) x RULES x EXAMPLES (see the constants).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert

from newsletter.audience import Segments, import_csv, iter_subscribers
from newsletter.core.yamlsrc import parse_yaml
from newsletter.db.tables import subscriber_tags, subscribers

SUBSCRIBERS = 40
RULES = 8
EXAMPLES = 60

KEYS = ("role", "country", "org")
VALUES = ("press", "Press", " press", "press ", "pre ss", "EG", "eg", "", "7")
TAGS = ("egypt", "energy", "staff", "tech")
STATUSES = ("active", "active", "active", "unsubscribed", "bounced", "complained")
DAYS = [dt.datetime(2026, 1, d, tzinfo=dt.UTC) for d in (1, 10, 20)]

people = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3),
        st.sets(st.sampled_from(TAGS), max_size=3),
        st.sampled_from(STATUSES),
        st.sampled_from(DAYS),
    ),
    min_size=1,
    max_size=SUBSCRIBERS,
)

attr_test = st.one_of(
    st.sampled_from(VALUES),
    st.builds(lambda v: {"in": v}, st.lists(st.sampled_from(VALUES), min_size=1, max_size=3)),
    st.builds(lambda b: {"exists": b}, st.booleans()),
)
leaf = st.one_of(
    st.builds(lambda t: {"tag": t}, st.sampled_from((*TAGS, "EGYPT", " staff "))),
    st.builds(lambda a: {"attr": a},
              st.dictionaries(st.sampled_from(KEYS), attr_test, min_size=1, max_size=2)),
    st.builds(lambda d: {"subscribed_after": d.date().isoformat()}, st.sampled_from(DAYS)),
)


def _combine(children: st.SearchStrategy) -> st.SearchStrategy:
    items = st.lists(children, min_size=1, max_size=3)
    single = st.builds(lambda k, v: {k: v}, st.sampled_from(("all", "any", "none")), items)
    # several keys in one mapping are ANDed together
    return st.one_of(single, st.builds(lambda a, b: {**a, **b}, single, children))


rules = st.recursive(leaf, _combine, max_leaves=8)
rule_sets = st.lists(st.one_of(rules, st.just({})), min_size=RULES, max_size=RULES)


def _segments(rule_list: list[dict], tmp: Path) -> Segments:
    """The rules as segments.yaml; the last one also refers to an earlier segment."""
    named = {f"r{i}": rule for i, rule in enumerate(rule_list)}
    named[f"r{len(rule_list) - 1}"] = {"none": [{"segment": "r0"}], "any": [rule_list[-1]]}
    text = yaml.safe_dump({"segments": named}, sort_keys=False)
    return Segments.from_doc(parse_yaml(text, tmp / "segments.yaml"))


def _load(engine: Engine, rows: list[tuple]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(subscriber_tags))
        conn.execute(delete(subscribers))
        conn.execute(insert(subscribers), [
            {"id": i + 1, "email": f"p{i}@example.org", "email_key": f"p{i}@example.org",
             "name": "", "status": status, "attributes": attrs, "source": "test",
             "created_at": day, "updated_at": day, "status_changed_at": day}
            for i, (attrs, _, status, day) in enumerate(rows)])
        tag_rows = [{"subscriber_id": i + 1, "tag": t}
                    for i, (_, tags, _, _) in enumerate(rows) for t in tags]
        if tag_rows:
            conn.execute(insert(subscriber_tags), tag_rows)


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=people, rule_list=rule_sets)
def test_sql_agrees_with_plain_python(engine: Engine, tmp_path: Path, rows: list[tuple],
                                      rule_list: list[dict]) -> None:
    _load(engine, rows)
    segments = _segments(rule_list, tmp_path)
    everyone = list(iter_subscribers(engine))
    assert len(everyone) == len(rows)
    with engine.connect() as conn:
        for name in segments.names:
            found = set(conn.execute(segments.query(name).with_only_columns(
                subscribers.c.id)).scalars())
            expected = {s.id for s in everyone if segments.matches(name, s)}
            assert found == expected, (name, segments.get(name).rule)


PEOPLE = """\
email,name,tags,role
ann@example.org,Ann,egypt,press
bob@example.org,Bob,staff,academic
cat@example.org,Cat,,
dan@example.org,Dan,egypt;staff,Press
"""

CASES = [
    # (rule, members) -- cat has no role and no tags
    ({"none": [{"attr": {"role": "press"}}]}, {"bob", "cat", "dan"}),
    ({"none": [{"tag": "staff"}]}, {"ann", "cat"}),
    ({"attr": {"role": {"exists": False}}}, {"cat"}),
    ({"attr": {"role": {"exists": True}}}, {"ann", "bob", "dan"}),
    ({"none": [{"all": [{"tag": "egypt"}, {"none": [{"attr": {"role": "press"}}]}]}]},
     {"ann", "bob", "cat"}),
    ({"any": [{"attr": {"role": {"in": ["press", "academic"]}}}, {"none": [{"tag": "egypt"}]}]},
     {"ann", "bob", "cat"}),
]


@pytest.mark.parametrize(("rule", "expected"), CASES)
def test_missing_attribute_or_tag(engine: Engine, tmp_path: Path, rule: dict,
                                  expected: set[str]) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(PEOPLE, encoding="utf-8")
    import_csv(engine, csv)
    text = yaml.safe_dump({"segments": {"s": rule}})
    segments = Segments.from_doc(parse_yaml(text, tmp_path / "segments.yaml"))
    with engine.connect() as conn:
        found = {e.split("@")[0] for e in conn.execute(
            segments.query("s").with_only_columns(subscribers.c.email)).scalars()}
    assert found == expected
    assert {s.email.split("@")[0] for s in iter_subscribers(engine)
            if segments.matches("s", s)} == expected
