"""Segments: the rule language, compiled to SQL, on both databases; and its error reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from newsletter.audience import (
    Segments,
    Status,
    add_subscriber,
    import_csv,
    set_status,
)
from newsletter.core.errors import InputError
from newsletter.db.tables import subscribers

ROOT = Path(__file__).resolve().parents[2]

PEOPLE = """\
email,name,tags,subscribed_at,role,country
ann@example.org,Ann,egypt;energy,2024-01-10,press,EG
bob@example.org,Bob,cyber,2025-06-01,academic,US
cat@example.org,Cat,tech;staff,2026-02-01,staff,US
dan@example.org,Dan,egypt;staff,2026-03-01,press,EG
eve@example.org,Eve,trade,2026-04-01,policymaker,GB
fay@example.org,Fay,egypt,2026-05-01,press,EG
"""


def write_segments(tmp_path: Path, text: str) -> Segments:
    path = tmp_path / "subscribers" / "segments.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return Segments.load(tmp_path)


@pytest.fixture()
def people(engine: Engine, tmp_path: Path) -> Engine:
    csv = tmp_path / "people.csv"
    csv.write_text(PEOPLE, encoding="utf-8")
    import_csv(engine, csv)
    with engine.begin() as conn:
        set_status(conn, "fay@example.org", Status.UNSUBSCRIBED)
    return engine


def members(engine: Engine, segments: Segments, name: str) -> list[str]:
    found = [s.email.split("@")[0] for b in segments.members(engine, name) for s in b]
    with engine.connect() as conn:
        assert segments.count(conn, name) == len(found)
        query = segments.query(name).with_only_columns(subscribers.c.email)
        assert sorted(conn.execute(query).scalars()) == sorted(f"{n}@example.org" for n in found)
    return found


RULES = """\
segments:
  everyone: {}
  bare:
  cyber: {any: [{tag: cyber}, {tag: tech}]}
  egypt-press:
    all: [{tag: egypt}, {attr: {role: press}}]
    none: [{tag: staff}]
  roles: {attr: {role: {in: [academic, policymaker]}}}
  two-attrs: {attr: {role: press, country: EG}}
  recent: {subscribed_after: 2026-01-15}
  recent-exact: {subscribed_after: "2026-03-01T00:00:00Z"}
  no-staff-cyber: {segment: cyber, none: [{tag: staff}]}
  chained: {all: [{segment: no-staff-cyber}], any: [{tag: cyber}]}
  nested:
    any:
      - {all: [{tag: egypt}, {none: [{tag: energy}]}]}
      - {attr: {country: GB}}
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("everyone", ["ann", "bob", "cat", "dan", "eve"]),  # fay unsubscribed: never a member
        ("bare", ["ann", "bob", "cat", "dan", "eve"]),
        ("cyber", ["bob", "cat"]),
        ("egypt-press", ["ann"]),
        ("roles", ["bob", "eve"]),
        ("two-attrs", ["ann", "dan"]),
        ("recent", ["cat", "dan", "eve"]),
        ("recent-exact", ["dan", "eve"]),
        ("no-staff-cyber", ["bob"]),
        ("chained", ["bob"]),
        ("nested", ["dan", "eve"]),
    ],
)
def test_segments_select_active_members(
    people: Engine, tmp_path: Path, name: str, expected: list[str]
) -> None:
    segments = write_segments(tmp_path, RULES)
    assert members(people, segments, name) == expected


def test_retired_subscribers_leave_every_segment(people: Engine, tmp_path: Path) -> None:
    segments = write_segments(tmp_path, RULES)
    with people.begin() as conn:
        set_status(conn, "bob@example.org", Status.BOUNCED)
        set_status(conn, "ann@example.org", Status.COMPLAINED)
    assert members(people, segments, "cyber") == ["cat"]
    assert members(people, segments, "egypt-press") == []


def test_members_stream_in_id_order_in_batches(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        for i in range(25):
            add_subscriber(conn, f"p{i:02}@example.org", tags=["odd" if i % 2 else "even"])
    segments = write_segments(tmp_path, "segments:\n  odd: {tag: odd}\n")
    batches = list(segments.members(engine, "odd", batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2]
    ids = [s.id for b in batches for s in b]
    assert ids == sorted(ids)
    assert [s.email for s in batches[0]][:2] == ["p01@example.org", "p03@example.org"]


def test_segment_query_feeds_insert_from_select(engine: Engine, tmp_path: Path) -> None:
    """The dispatch engine snapshots recipients with INSERT ... SELECT from segment_query."""
    from sqlalchemy import BigInteger, Column, MetaData, String, Table

    snap = Table("snap", MetaData(), Column("sid", BigInteger), Column("email", String(320)))
    with engine.begin() as conn:
        for who, tag in (("a", "x"), ("b", "y"), ("c", "x")):
            add_subscriber(conn, f"{who}@example.org", tags=[tag])
        snap.create(conn)
        segments = write_segments(tmp_path, "segments:\n  xs: {tag: x}\n")
        query = segments.query("xs").with_only_columns(subscribers.c.id, subscribers.c.email)
        conn.execute(insert(snap).from_select(["sid", "email"], query))
        assert sorted(conn.execute(select(snap.c.email)).scalars()) == [
            "a@example.org", "c@example.org"]


def test_attribute_values_compare_as_text(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "a@example.org", attributes={"year": "2024", "since": "2020-01-31"})
    segments = write_segments(tmp_path, "segments:\n  y: {attr: {year: 2024, since: 2020-01-31}}\n")
    assert members(engine, segments, "y") == ["a"]


def test_the_sample_segments_use_every_condition_and_compile() -> None:
    segments = Segments.load(ROOT)
    assert {"everyone", "cyber", "egypt-press"} <= set(segments.names)
    text = (ROOT / "subscribers" / "segments.yaml").read_text(encoding="utf-8")
    for word in ("all:", "any:", "none:", "tag:", "attr:", "in:", "segment:",
                 "subscribed_after:"):
        assert word in text, word
    for name in segments.names:
        segments.condition(name)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("segments:\n  a: {segment: a}\n", 2, "segment 'a' refers to itself (a -> a)"),
        ("segments:\n  a: {segment: b}\n  b:\n    any: [{segment: a}]\n", 2,
         "segment 'a' refers to itself (a -> b -> a)"),
        ("segments:\n  a: {tag: x}\n  b:\n    all:\n      - {segment: nope}\n", 5,
         "unknown segment 'nope' (defined: a, b)"),
        ("segments:\n  a:\n    colour: red\n", 3, "unknown condition 'colour'"),
        ("segments:\n  a: {tag: [x, y]}\n", 2, "'tag' needs a tag name, not a list"),
        ("segments:\n  a: {any: {tag: x}}\n", 2, "'any' needs a non-empty list of rules"),
        ("segments:\n  a: {all: []}\n", 2, "'all' needs a non-empty list"),
        ("segments:\n  a:\n    attr: {role: [x]}\n", 3, "attribute 'role' must equal text"),
        ("segments:\n  a:\n    attr: {role: {in: press}}\n", 3, "takes a value or {in: [values]}"),
        ("segments:\n  a:\n    attr: {role: {in: [true]}}\n", 3, "must be text or a number"),
        ("segments:\n  a: {subscribed_after: soon}\n", 2, "'subscribed_after' needs a date"),
        ("segments:\n  a: [tag, x]\n", 2, "a rule must be a mapping"),
        ("segments:\n  a:\n    none: [cyber]\n", 3, "a rule must be a mapping"),
        ("segments: [a, b]\n", 1, "expected a 'segments:' mapping"),
        ("segments:\n  a: {tag: x\n", 3, "YAML syntax error"),
    ],
    ids=["self", "cycle", "unknown-segment", "unknown-condition", "tag-type", "any-type",
         "empty-all", "attr-type", "in-type", "in-item-type", "date", "rule-list", "item-type",
         "file-shape", "syntax"],
)
def test_bad_segments_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    with pytest.raises(InputError) as info:
        write_segments(tmp_path, text)
    first = info.value.problems[0]
    assert message in first.message
    assert first.line == line
    assert str(first.file).endswith("subscribers/segments.yaml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        write_segments(tmp_path, "segments:\n  a: {tag: 1}\n  b: {colour: red}\n"
                                 "  c: {segment: zzz}\n")
    assert [p.line for p in info.value.problems] == [2, 3, 4]


def test_unknown_segment_name_and_missing_file(tmp_path: Path) -> None:
    segments = Segments.load(tmp_path)
    assert segments.names == []
    with pytest.raises(InputError, match="unknown segment 'cyber' \\(defined: none\\)"):
        segments.condition("cyber")


def test_subscribed_after_compares_instants(engine: Engine, tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 15, 0, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for email, when in (("early@example.org", now - dt.timedelta(seconds=1)),
                            ("exact@example.org", now)):
            conn.execute(insert(subscribers).values(
                email=email, email_key=email, name="", status="active", attributes={},
                source="t", created_at=when, updated_at=when, status_changed_at=when))
    segments = write_segments(tmp_path, "segments:\n  s: {subscribed_after: 2026-01-15}\n")
    assert members(engine, segments, "s") == ["exact"]
