"""Segments: rules from subscribers/segments.yaml compiled into one SQL condition each.

Rule language (DESIGN.md): a segment is a mapping whose keys are all ANDed together:
`all: [...]`, `any: [...]`, `none: [...]` (lists of nested rules), `tag: NAME`,
`attr: {KEY: VALUE | {in: [VALUES]} | {exists: BOOL}}`, `segment: OTHER`,
`subscribed_after: DATE`, and the engagement conditions `opened`, `clicked`, `engaged_within`
(newsletter.audience.engagement). `{}` matches everyone. Only active subscribers are ever
members, and a paused subscriber is in no segment until the pause ends (`not_paused`, applied
at the top level of every segment).

Two-valued logic, always: a subscriber who lacks an attribute or a tag does not match a
positive condition on it, and so does match its `none`. Every leaf compiles to an SQL
expression that is never NULL, so `NOT` and `OR` in SQL mean what they mean in Python.

Each condition type is one `ConditionType` in `CONDITION_TYPES`: how to check its YAML, how to
compile it to SQL, and how to evaluate it in plain Python (`Segments.evaluate`, the reference
the SQL is tested against). A new condition is one more entry there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from newsletter.audience import engagement
from newsletter.audience.model import Status, Subscriber, normalize_tag, utcnow
from newsletter.audience.subscribers import iter_batches
from newsletter.core.errors import InputError, Problem
from newsletter.core.yamlsrc import Loc, SourceError, YamlDoc, load_yaml_file
from newsletter.db.tables import subscriber_tags, subscribers

SEGMENTS_FILE = Path("subscribers") / "segments.yaml"
COMBINATORS = ("all", "any", "none")


@dataclass(frozen=True)
class Segment:
    name: str
    rule: Any  # the raw, validated YAML mapping
    line: int


class _Checker:
    """Validates rule mappings, collecting every problem with its line."""

    def __init__(self, doc: YamlDoc, names: set[str]):
        self.doc, self.names = doc, names
        self.problems: list[Problem] = []
        self.refs: dict[str, list[tuple[str, int]]] = {}

    def fail(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.doc.path, self.doc.line_of(loc), message))

    def rule(self, segment: str, value: Any, loc: Loc) -> None:
        if value is None and len(loc) == 2:
            return  # `name:` with nothing: everyone
        if not isinstance(value, dict):
            self.fail(loc, f"a rule must be a mapping like {{tag: cyber}}, not {_kind(value)}")
            return
        for key, arg in value.items():
            here = (*loc, key)
            if key in COMBINATORS:
                if not isinstance(arg, list) or not arg:
                    self.fail(here, f"'{key}' needs a non-empty list of rules")
                    continue
                for i, item in enumerate(arg):
                    self.rule(segment, item, (*here, i))
            elif key in CONDITION_TYPES:
                CONDITION_TYPES[key].check(self, segment, arg, here)
            else:
                self.fail(here, f"unknown condition '{key}'; use one of "
                                f"{', '.join(COMBINATORS + tuple(CONDITION_TYPES))}")

    def tag(self, segment: str, arg: Any, loc: Loc) -> None:
        if not isinstance(arg, str) or not arg.strip():
            self.fail(loc, f"'tag' needs a tag name, not {_kind(arg)}")

    def segment(self, segment: str, arg: Any, loc: Loc) -> None:
        if not isinstance(arg, str):
            self.fail(loc, f"'segment' needs a segment name, not {_kind(arg)}")
        elif arg not in self.names:
            known = ", ".join(sorted(self.names))
            self.fail(loc, f"unknown segment '{arg}' (defined: {known})")
        else:
            self.refs.setdefault(segment, []).append((arg, self.doc.line_of(loc)))

    def subscribed_after(self, segment: str, arg: Any, loc: Loc) -> None:
        if _when(arg) is None:
            self.fail(loc, f"'subscribed_after' needs a date like 2026-01-31, not {_kind(arg)}")

    def attr(self, segment: str, arg: Any, loc: Loc) -> None:
        if not isinstance(arg, dict) or not arg:
            self.fail(loc, "'attr' needs a mapping like {role: press} or {role: {in: [a, b]}}")
            return
        for key, want in arg.items():
            here = (*loc, key)
            if isinstance(want, dict) and set(want) == {"exists"}:
                if not isinstance(want["exists"], bool):
                    self.fail(here, f"attribute '{key}': 'exists' takes true or false")
            elif isinstance(want, dict):
                values = want.get("in")
                if set(want) != {"in"} or not isinstance(values, list) or not values:
                    self.fail(here, f"attribute '{key}' takes a value, {{in: [values]}} or "
                                    "{exists: true|false}")
                elif any(_scalar(v) is None for v in values):
                    self.fail(here, f"attribute '{key}': every 'in' value must be text or a "
                                    "number")
            elif not isinstance(key, str):
                self.fail(here, f"attribute name {key!r} must be text")
            elif _scalar(want) is None:
                self.fail(here, f"attribute '{key}' must equal text or a number, "
                                f"not {_kind(want)}")

    def cycles(self) -> None:
        """Report every segment that reaches itself through `segment:` references."""
        for start in sorted(self.refs):
            path = self._path_back(start, start, [start], set())
            if path:
                line = self.refs[start][0][1]
                for target, ref_line in self.refs[start]:
                    if target == path[1]:
                        line = ref_line
                        break
                self.problems.append(Problem(
                    self.doc.path, line,
                    f"segment '{start}' refers to itself ({' -> '.join(path)})",
                ))

    def _path_back(self, start: str, at: str, path: list[str], seen: set[str]) -> list[str]:
        for target, _ in self.refs.get(at, []):
            if target == start:
                return [*path, target]
            if target not in seen:
                seen.add(target)
                found = self._path_back(start, target, [*path, target], seen)
                if found:
                    return found
        return []


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {str: "text", dict: "a mapping", list: "a list", bool: "true/false",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _scalar(value: Any) -> str | None:
    """An attribute value as stored (text), or None for a wrong type."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return None


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return _when(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


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
        checker = _Checker(doc, names)
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

    def rule_condition(self, name: str) -> ColumnElement[bool]:
        """The segment's rule alone, over `subscribers` (status not included)."""
        return self._compile(self.get(name).rule)

    def condition(self, name: str, now: dt.datetime | None = None) -> ColumnElement[bool]:
        """WHERE clause over `subscribers` for the segment's members (active ones only, and
        none whose pause lasts beyond `now`)."""
        return and_(subscribers.c.status == Status.ACTIVE.value, not_paused(now),
                    self.rule_condition(name))

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

    def _compile(self, rule: Any) -> ColumnElement[bool]:
        if not rule:
            return true()
        parts: list[ColumnElement[bool]] = []
        for key, arg in rule.items():
            if key == "all":
                parts.append(and_(true(), *(self._compile(r) for r in arg)))
            elif key == "any":
                parts.append(or_(false(), *(self._compile(r) for r in arg)))
            elif key == "none":
                parts.append(not_(or_(false(), *(self._compile(r) for r in arg))))
            else:
                parts.append(CONDITION_TYPES[key].compile(self, arg))
        return and_(true(), *parts)


def not_paused(now: dt.datetime | None = None) -> ColumnElement[bool]:
    """Subscribers without a pause, or whose pause has ended by `now`."""
    paused = subscribers.c.paused_until
    return or_(paused.is_(None), paused <= (now or utcnow()))


# --- the condition types: one entry each (check, SQL, plain Python) --------------------------


@dataclass(frozen=True)
class ConditionType:
    """One kind of condition. `compile` must give an SQL expression that is never NULL, and
    `evaluate` the same answer in plain Python."""

    name: str
    check: Callable[[_Checker, str, Any, Loc], None]
    compile: Callable[[Segments, Any], ColumnElement[bool]]
    evaluate: Callable[[Segments, Any, Subscriber], bool]


def _has_tag(tag: str) -> ColumnElement[bool]:
    return exists().where(
        subscriber_tags.c.tag == tag, subscriber_tags.c.subscriber_id == subscribers.c.id
    )


def _attr_value(key: str) -> ColumnElement[Any]:
    return subscribers.c.attributes[key].as_string()


def _attr_sql(key: str, want: Any) -> ColumnElement[bool]:
    """One attribute test; a missing attribute gives FALSE (never NULL)."""
    value = _attr_value(key)
    if isinstance(want, dict) and "exists" in want:
        return value.is_not(None) if want["exists"] else value.is_(None)
    wanted = [_scalar(v) for v in want["in"]] if isinstance(want, dict) else [_scalar(want)]
    return and_(value.is_not(None), value.in_(wanted) if len(wanted) > 1 else value == wanted[0])


def _attr_python(key: str, want: Any, attributes: dict[str, Any]) -> bool:
    present = key in attributes and attributes[key] is not None
    if isinstance(want, dict) and "exists" in want:
        return present is want["exists"]
    if not present:
        return False
    wanted = [_scalar(v) for v in want["in"]] if isinstance(want, dict) else [_scalar(want)]
    return str(attributes[key]) in wanted


CONDITION_TYPES: dict[str, ConditionType] = {
    c.name: c
    for c in (
        ConditionType(
            "tag", _Checker.tag,
            lambda segs, arg: _has_tag(normalize_tag(arg)),
            lambda segs, arg, sub: normalize_tag(arg) in sub.tags,
        ),
        ConditionType(
            "attr", _Checker.attr,
            lambda segs, arg: and_(true(), *(_attr_sql(k, v) for k, v in arg.items())),
            lambda segs, arg, sub: all(_attr_python(k, v, sub.attributes)
                                       for k, v in arg.items()),
        ),
        ConditionType(
            "segment", _Checker.segment,
            lambda segs, arg: segs.rule_condition(arg),
            lambda segs, arg, sub: segs.evaluate(segs.get(arg).rule, sub),
        ),
        ConditionType(
            "subscribed_after", _Checker.subscribed_after,
            lambda segs, arg: subscribers.c.created_at >= _when(arg),
            lambda segs, arg, sub: sub.created_at >= _when(arg),  # type: ignore[operator]
        ),
    )
}


def _engagement_type(key: str) -> ConditionType:
    """An engagement condition (opened, clicked, engaged_within): SQL over the event store.

    Its plain-Python reference needs the events, so it lives with its property test
    (tests/audience/test_engagement_segments.py) rather than in `Segments.evaluate`."""

    def check(checker: _Checker, segment: str, arg: Any, here: Loc) -> None:
        problem = engagement.problem(key, arg)
        if problem:
            checker.fail(here, problem)

    def evaluate(segs: Segments, arg: Any, sub: Subscriber) -> bool:
        raise NotImplementedError(f"'{key}' is evaluated in SQL only (it reads the events)")

    return ConditionType(key, check, lambda segs, arg: engagement.condition(key, arg), evaluate)


CONDITION_TYPES.update({key: _engagement_type(key) for key in engagement.CONDITIONS})
