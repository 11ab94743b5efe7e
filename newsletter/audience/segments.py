"""Segments: rules from subscribers/segments.yaml compiled into one SQL condition each.

Rule language (DESIGN.md): a segment is a mapping whose keys are all ANDed together:
`all: [...]`, `any: [...]`, `none: [...]` (lists of nested rules), `tag: NAME`,
`attr: {KEY: VALUE | {in: [VALUES]}}`, `segment: OTHER`, `subscribed_after: DATE`, and the
engagement conditions `opened`, `clicked`, `engaged_within` (newsletter.audience.engagement).
`{}` matches everyone. Only active subscribers are ever members.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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
from newsletter.audience.model import Status, Subscriber, normalize_tag
from newsletter.audience.subscribers import iter_batches
from newsletter.core.errors import InputError, Problem
from newsletter.core.yamlsrc import Loc, SourceError, YamlDoc, load_yaml_file
from newsletter.db.tables import subscriber_tags, subscribers

SEGMENTS_FILE = Path("subscribers") / "segments.yaml"
COMBINATORS = ("all", "any", "none")
CONDITIONS = ("tag", "attr", "segment", "subscribed_after", *engagement.CONDITIONS)


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
            elif key == "tag":
                if not isinstance(arg, str) or not arg.strip():
                    self.fail(here, f"'tag' needs a tag name, not {_kind(arg)}")
            elif key == "attr":
                self.attr(arg, here)
            elif key == "segment":
                if not isinstance(arg, str):
                    self.fail(here, f"'segment' needs a segment name, not {_kind(arg)}")
                elif arg not in self.names:
                    known = ", ".join(sorted(self.names))
                    self.fail(here, f"unknown segment '{arg}' (defined: {known})")
                else:
                    self.refs.setdefault(segment, []).append((arg, self.doc.line_of(here)))
            elif key == "subscribed_after":
                if _when(arg) is None:
                    self.fail(here, f"'subscribed_after' needs a date like 2026-01-31, "
                                    f"not {_kind(arg)}")
            elif key in engagement.CONDITIONS:
                problem = engagement.problem(key, arg)
                if problem:
                    self.fail(here, problem)
            else:
                self.fail(here, f"unknown condition '{key}'; use one of "
                                f"{', '.join(COMBINATORS + CONDITIONS)}")

    def attr(self, arg: Any, loc: Loc) -> None:
        if not isinstance(arg, dict) or not arg:
            self.fail(loc, "'attr' needs a mapping like {role: press} or {role: {in: [a, b]}}")
            return
        for key, want in arg.items():
            here = (*loc, key)
            if isinstance(want, dict):
                values = want.get("in")
                if set(want) != {"in"} or not isinstance(values, list) or not values:
                    self.fail(here, f"attribute '{key}' takes a value or {{in: [values]}}")
                elif any(_scalar(v) is None for v in values):
                    self.fail(here, f"attribute '{key}': every 'in' value must be text or a "
                                    "number")
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

    def condition(self, name: str) -> ColumnElement[bool]:
        """WHERE clause over `subscribers` for the segment's members (active ones only)."""
        return and_(subscribers.c.status == Status.ACTIVE.value, self.rule_condition(name))

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

    def _compile(self, rule: Any) -> ColumnElement[bool]:
        if not rule:
            return true()
        parts: list[ColumnElement[bool]] = []
        for key, arg in rule.items():
            if key == "all":
                parts.append(and_(*(self._compile(r) for r in arg)))
            elif key == "any":
                parts.append(or_(false(), *(self._compile(r) for r in arg)))
            elif key == "none":
                parts.append(not_(or_(false(), *(self._compile(r) for r in arg))))
            elif key == "tag":
                parts.append(_has_tag(normalize_tag(arg)))
            elif key == "attr":
                parts += [_attr(k, v) for k, v in arg.items()]
            elif key == "segment":
                parts.append(self.rule_condition(arg))
            elif key == "subscribed_after":
                when = _when(arg)
                assert when is not None
                parts.append(subscribers.c.created_at >= when)
            elif key in engagement.CONDITIONS:
                parts.append(engagement.condition(key, arg))
        return and_(true(), *parts)


def _has_tag(tag: str) -> ColumnElement[bool]:
    return exists().where(
        subscriber_tags.c.tag == tag, subscriber_tags.c.subscriber_id == subscribers.c.id
    )


def _attr(key: str, want: Any) -> ColumnElement[bool]:
    value = subscribers.c.attributes[key].as_string()
    if isinstance(want, dict):
        return value.in_([_scalar(v) for v in want["in"]])
    return value == _scalar(want)
