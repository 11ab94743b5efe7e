"""Segments: rules from subscribers/segments.yaml compiled into one SQL condition each.

Rule language (docs/subscribers.md): a segment is a mapping whose keys are all ANDed together:
`all: [...]`, `any: [...]`, `none: [...]` (lists of nested rules), `tag: NAME`,
`attr: {KEY: VALUE | {in: [VALUES]} | {exists: BOOL}}`, `segment: OTHER`,
`subscribed_after: DATE`, and the engagement conditions `opened`, `clicked`, `engaged_within`
(newsletter.audience.engagement). `{}` matches everyone. Only active subscribers are ever
members, and a paused subscriber is in no segment until the pause ends (`not_paused`, applied
at the top level of every segment). The conditions themselves, with their SQL and their
plain-Python reference, are in newsletter.audience.conditions; checking the YAML is
newsletter.audience.rules.

Conditions over a set of people (tags, `opened`, `clicked`) are never rescanned per
subscriber; `engaged_within` needs no set (a column of the subscriber's row, kept by
newsletter.audience.engaged), so mixed with row conditions it costs no join at all. At the
top level of a rule a set is `key IN (SELECT ...)` (a semi-join) and in a top-level `none` its
negation (an anti-join: `NOT EXISTS` on PostgreSQL); `any` of plain tags is one set. Deeper
inside `any` or `none`: on SQLite the same `IN (SELECT ...)`, which SQLite evaluates once into
a temporary index (a LIST SUBQUERY). On PostgreSQL, whose planner hashes such a subquery only
while it fits in `hash_mem` (and otherwise rescans it for every subscriber), a tag set is a
correlated `EXISTS` on subscriber_tags: hashed once when it fits, otherwise one index look-up
of the subscriber's id, so still one pass over the subscribers. Event sets
(`opened`, `clicked`: no index by subscriber) become derived tables (`SELECT DISTINCT ...`)
joined to the subscribers once, the whole rule being `id IN (SELECT id FROM subscribers LEFT
JOIN ... WHERE rule)`: hash joins, which spill to disk rather than degrade. In every AND and OR
the row tests come before the set tests, so a set is only consulted for the rows they leave
undecided. tests/audience/test_segment_plans.py asserts the plans on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.sqltypes import NullType

from newsletter.audience.conditions import CONDITION_TYPES, People, tagged
from newsletter.audience.model import Status, Subscriber, normalize_tag, utcnow
from newsletter.audience.rules import COMBINATORS, RuleChecker
from newsletter.audience.subscribers import iter_batches
from newsletter.core.errors import InputError, Problem
from newsletter.core.yamlsrc import SourceError, YamlDoc, load_yaml_file
from newsletter.db.tables import subscribers

SEGMENTS_FILE = Path("subscribers") / "segments.yaml"


@dataclass(frozen=True)
class Segment:
    name: str
    rule: Any  # the raw, validated YAML mapping
    line: int


class Segments:
    """The publication's segments, validated; each compiles to one SQL condition."""

    def __init__(
        self, path: Path, segments: dict[str, Segment], warnings: list[Problem] | None = None
    ):
        self.path = path
        self.segments = segments
        self.warnings = warnings or []

    @classmethod
    def load(cls, source: Any) -> Segments:
        """Load from a Publication, a publication folder, or a segments.yaml path.

        A missing file means no segments. Raises InputError listing every problem.
        """
        path = Path(source) if isinstance(source, str | Path) else Path(source.root)
        if path.suffix not in (".yaml", ".yml"):
            path = path / SEGMENTS_FILE
        if not path.exists():
            return cls(path, {})
        try:
            doc = load_yaml_file(path)
        except SourceError as exc:
            raise InputError(exc.problem) from None
        return cls.from_doc(doc)

    @classmethod
    def from_doc(cls, doc: YamlDoc) -> Segments:
        data = doc.data
        if data is None:
            return cls(doc.path, {})
        if not isinstance(data, dict) or not isinstance(data.get("segments"), dict):
            raise InputError(Problem(doc.path, doc.line_of(("segments",)),
                                     "expected a 'segments:' mapping of name: rule"))
        problems = [
            Problem(doc.path, doc.line_of((key,)), f"unknown key '{key}' is ignored",
                    severity="warning")
            for key in data if key != "segments"
        ]
        raw = data["segments"]
        names = {n for n in raw if isinstance(n, str)}
        checker = RuleChecker(doc, names)
        for name, rule in raw.items():
            if not isinstance(name, str):
                checker.fail(("segments", name), f"segment name {name!r} must be text")
                continue
            checker.rule(name, rule, ("segments", name))
        checker.cycles()
        errors = sorted(checker.problems, key=lambda p: p.line or 0)
        if errors:
            raise InputError(errors)
        segments = {
            name: Segment(name, rule or {}, doc.line_of(("segments", name)))
            for name, rule in raw.items()
        }
        return cls(doc.path, segments, problems)

    @property
    def names(self) -> list[str]:
        return list(self.segments)

    def get(self, name: str) -> Segment:
        try:
            return self.segments[name]
        except KeyError:
            known = ", ".join(self.segments) or "none"
            raise InputError(Problem(self.path, None,
                                     f"unknown segment '{name}' (defined: {known})")) from None

    def rule(self, name: str) -> Any:
        """The segment's rule as written (validated)."""
        return self.get(name).rule

    def rule_condition(self, name: str | Sequence[str],
                       now: dt.datetime | None = None) -> ColumnElement[bool]:
        """The segment's rule alone (several segments: any of them), over `subscribers`
        (status not included)."""
        names = [name] if isinstance(name, str) else list(name)
        rule = self.rule(names[0]) if len(names) == 1 else \
            {"any": [{"segment": n} for n in names]}
        for n in names:
            self.get(n)  # an unknown name is an InputError
        return _ByDialect(sqlite=_Compiler(self, now, join_sets=False).where(rule),
                          other=_Compiler(self, now, join_sets=True).where(rule))

    def condition(self, name: str | Sequence[str],
                  now: dt.datetime | None = None) -> ColumnElement[bool]:
        """WHERE clause over `subscribers` for the segment's members (active ones only, and
        none whose pause lasts beyond `now`). Several names: the members of any of them, as
        one condition (better than an OR of several: the sets are joined once)."""
        return and_(subscribers.c.status == Status.ACTIVE.value, not_paused(now),
                    self.rule_condition(name, now))

    def topic_of(self, name: str, topics: dict[str, str]) -> str | None:
        """The topic tag a segment is defined by (its rule is `{tag: TOPIC}` alone), or None."""
        rule = self.get(name).rule
        while isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in ("all", "any") \
                and len(next(iter(rule.values()))) == 1:
            rule = next(iter(rule.values()))[0]
        if isinstance(rule, dict) and set(rule) == {"tag"}:
            tag = normalize_tag(rule["tag"])
            return tag if tag in topics else None
        return None

    def query(self, name: str) -> Select:
        """SELECT of the members' `subscribers` rows (unordered; add order_by as needed).

        For a snapshot: `insert(ledger).from_select([...], segments.query(n).with_only_columns(
        subscribers.c.id, ...))`.
        """
        return select(subscribers).where(self.condition(name))

    def count(self, conn: Connection, name: str) -> int:
        query = select(func.count()).select_from(subscribers).where(self.condition(name))
        return conn.execute(query).scalar_one()

    def members(
        self, engine: Engine | Connection, name: str, batch_size: int = 1000
    ) -> Iterator[list[Subscriber]]:
        """The members in id order, `batch_size` at a time, never all in memory."""
        return iter_batches(engine, self.condition(name), batch_size)

    def matches(self, name: str, subscriber: Subscriber) -> bool:
        """Plain-Python membership: the reference the SQL of `condition` must agree with."""
        return subscriber.status == Status.ACTIVE and self.evaluate(self.get(name).rule,
                                                                    subscriber)

    def evaluate(self, rule: Any, subscriber: Subscriber) -> bool:
        """Does `subscriber` satisfy `rule` (status not included)? Plain Python, no SQL."""
        if not rule:
            return True
        for key, arg in rule.items():
            if key == "all":
                ok = all(self.evaluate(r, subscriber) for r in arg)
            elif key == "any":
                ok = any(self.evaluate(r, subscriber) for r in arg)
            elif key == "none":
                ok = not any(self.evaluate(r, subscriber) for r in arg)
            else:
                ok = CONDITION_TYPES[key].evaluate(self, arg, subscriber)
            if not ok:
                return False
        return True


def not_paused(now: dt.datetime | None = None) -> ColumnElement[bool]:
    """Subscribers without a pause, or whose pause has ended by `now`."""
    paused = subscribers.c.paused_until
    return or_(paused.is_(None), paused <= (now or utcnow()))


class _Compiler:
    """Compiles one rule to SQL over `subscribers` (see the module's docstring); `join_sets`:
    sets deep in `any`/`none` become derived tables joined once (PostgreSQL)."""

    def __init__(self, segments: Segments, now: dt.datetime | None, join_sets: bool):
        self.segments, self.now, self.join_sets = segments, now, join_sets
        self.nested = 0  # how many `any` or `none` enclose the condition being compiled
        self.sets: list[tuple[Any, Any]] = []  # (derived table, subscribers' column) to join
        self.set_tests = 0  # how many set tests have been compiled so far

    def where(self, rule: Any) -> ColumnElement[bool]:
        condition = self.rule(rule)
        if not self.sets:
            return condition
        joined = subscribers
        for people, column in self.sets:
            joined = joined.outerjoin(people, people.c[0] == column)
        members = select(subscribers.c.id).select_from(joined).where(condition)
        return subscribers.c.id.in_(members.correlate(None))

    def rule_of(self, segment: str) -> ColumnElement[bool]:
        return self.rule(self.segments.rule(segment))

    def rule(self, rule: Any) -> ColumnElement[bool]:
        if not rule:
            return true()
        return and_(true(), *self.sets_last(lambda k=key, a=arg: self.part(k, a)
                                            for key, arg in rule.items()))

    def part(self, key: str, arg: Any) -> list[ColumnElement[bool]]:
        """One key of a rule mapping, as the conditions it ANDs."""
        found = self.set_of({key: arg})
        if found is not None:
            return [self.member(found)]
        if key in ("all", "any") and len(arg) == 1:  # `any` of one is that one
            return [self.rule(arg[0])]
        if key == "all":
            return [and_(true(), *self.sets_last(lambda r=r: [self.rule(r)] for r in arg))]
        if key == "none" and not self.nested:  # not this and not that: anti-joins
            return [self.outside(r) for r in arg]
        if key in COMBINATORS:
            with self.inside():
                either = or_(false(), *self.sets_last(lambda r=r: [self.rule(r)] for r in arg))
            return [either if key == "any" else not_(either)]
        kind = CONDITION_TYPES[key]
        assert kind.compile is not None
        return [kind.compile(self, arg)]

    def sets_last(self, parts: Iterable[Callable[[], list[ColumnElement[bool]]]]
                  ) -> list[ColumnElement[bool]]:
        """Compile each part; those that test a set go after those that test the row alone,
        so that in an AND or an OR the row tests (cheap) decide first and a set is only
        probed for the rows they leave open. Two-valued logic: the order changes no result."""
        rows: list[ColumnElement[bool]] = []
        sets: list[ColumnElement[bool]] = []
        for compile_part in parts:
            before = self.set_tests
            found = compile_part()
            (sets if self.set_tests > before else rows).extend(found)
        return rows + sets

    def set_of(self, rule: Any) -> People | None:
        """The rule as one set of people, when it is one: a set condition, `any` of plain
        tags, or a segment that is one of these."""
        if not isinstance(rule, dict) or len(rule) != 1:
            return None
        ((key, arg),) = rule.items()
        if key == "segment":
            return self.set_of(self.segments.rule(arg))
        if key in ("any", "all") and len(arg) == 1:
            return self.set_of(arg[0])
        if key == "any" and all(isinstance(r, dict) and set(r) == {"tag"} for r in arg):
            return tagged(*(r["tag"] for r in arg))
        kind = CONDITION_TYPES.get(key)
        return None if kind is None or kind.people is None else kind.people(arg, self.now)

    def member(self, people: People) -> ColumnElement[bool]:
        """Subscribers in the set: computed once per query, or (an indexed set deep in `any`
        or `none` on PostgreSQL) a correlated EXISTS, which the planner hashes once when the
        set fits in `hash_mem` and otherwise looks up in the index row by row."""
        self.set_tests += 1
        column = subscribers.c[people.key]
        if not self.nested or not self.join_sets:
            return column.in_(people.members)
        if people.indexed:
            return people.members.where(people.members.selected_columns[0] == column).exists()
        found = people.members.distinct().subquery(f"people_{len(self.sets) + 1}")
        self.sets.append((found, column))
        return found.c[0].is_not(None)

    def outside(self, rule: Any) -> ColumnElement[bool]:
        """Subscribers that `rule` does not select, at the top level of the rule."""
        people = self.set_of(rule)
        if people is None:
            with self.inside():
                return not_(self.rule(rule))
        self.set_tests += 1
        column = subscribers.c[people.key]
        if not self.join_sets:
            return not_(column.in_(people.members))
        return ~people.members.where(people.members.selected_columns[0] == column).exists()

    @contextmanager
    def inside(self) -> Iterator[None]:
        self.nested += 1
        try:
            yield
        finally:
            self.nested -= 1


class _ByDialect(ColumnElement[bool]):
    """One condition written two ways: `sqlite` on SQLite, `other` on other databases."""

    inherit_cache = False
    type = NullType()  # as a Boolean, SQLite would get `(...) = 1` (no native booleans)

    def __init__(self, sqlite: ColumnElement[bool], other: ColumnElement[bool]):
        self.sqlite, self.other = sqlite, other

    @property
    def _from_objects(self) -> list[Any]:
        return [subscribers]


@compiles(_ByDialect)
def _other(element: _ByDialect, compiler: Any, **kw: Any) -> str:
    return compiler.process(Grouping(element.other), **kw)


@compiles(_ByDialect, "sqlite")
def _sqlite(element: _ByDialect, compiler: Any, **kw: Any) -> str:
    return compiler.process(Grouping(element.sqlite), **kw)
