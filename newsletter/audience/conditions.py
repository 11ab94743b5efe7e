"""The conditions a segment rule is made of: one `ConditionType` each.

A condition type says how to check its YAML argument (problems go to the rule checker,
newsletter.audience.rules), how to compile it to SQL over `subscribers`, and how to evaluate it
in plain Python (the reference the SQL is tested against). A new condition is one more entry
in `CONDITION_TYPES`.

Two-valued logic, always: a subscriber who lacks an attribute or a tag does not match a
positive condition on it. Every SQL expression here is never NULL, so `NOT` and `OR` in SQL
mean what they mean in Python.

Two kinds of SQL: a *row* condition is a test of one subscriber's row (`compile`;
`engaged_within` is one, over a copy the events keep up to date); a *set*
condition names the set of people who match (`people`: a `People`, a SELECT of one column
of theirs), which the compiler (newsletter.audience.segments) turns into a semi-join, an
anti-join or a hash join, so that the set is computed once per query rather than rescanned
once per subscriber; a set whose members are found by their key in an index (a tag's:
subscriber_tags is indexed by subscriber and by tag) may instead be looked up row by row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, select, true

from newsletter.audience import engagement
from newsletter.audience.model import Subscriber, normalize_tag
from newsletter.core.yamlsrc import Loc
from newsletter.db.tables import subscriber_tags, subscribers


class Checker(Protocol):
    """What a condition's check may use (newsletter.audience.rules.RuleChecker)."""

    names: set[str]

    def fail(self, loc: Loc, message: str) -> None: ...

    def refer(self, segment: str, target: str, loc: Loc) -> None: ...


class Compiler(Protocol):
    """What a condition's SQL may use (newsletter.audience.segments)."""

    now: dt.datetime | None

    def rule_of(self, segment: str) -> ColumnElement[bool]: ...


class Reference(Protocol):
    """What a condition's plain-Python evaluation may use (newsletter.audience.segments)."""

    def evaluate(self, rule: Any, subscriber: Subscriber) -> bool: ...

    def rule(self, segment: str) -> Any: ...


@dataclass(frozen=True)
class People:
    """A set of subscribers: `members` selects one column, the `key` column of theirs.
    `indexed`: one subscriber's membership is an index look-up (`members` with the key
    equal to theirs reads one index entry or none)."""

    key: str  # "id" or "email_key"
    members: Select
    indexed: bool = False


@dataclass(frozen=True)
class ConditionType:
    """One kind of condition: `check` its argument; `compile` it to a never-NULL SQL test of a
    subscriber's row, or give the `people` it selects (a SELECT of `email_key`s); `evaluate`
    it in plain Python."""

    name: str
    check: Callable[[Checker, str, Any, Loc], None]
    evaluate: Callable[[Reference, Any, Subscriber], bool]
    compile: Callable[[Compiler, Any], ColumnElement[bool]] | None = None
    people: Callable[[Any, dt.datetime | None], People] | None = None


def kind(value: Any) -> str:
    """How a YAML value is named in messages."""
    if value is None:
        return "nothing"
    return {str: "text", dict: "a mapping", list: "a list", bool: "true/false",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def scalar(value: Any) -> str | None:
    """An attribute value as stored (text), or None for a wrong type."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return None


def when(value: Any) -> dt.datetime | None:
    """A date or time from YAML, as an aware UTC datetime (None: not one)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return when(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


# --- tag ---------------------------------------------------------------------------------------

def _check_tag(checker: Checker, segment: str, arg: Any, loc: Loc) -> None:
    if not isinstance(arg, str) or not arg.strip():
        checker.fail(loc, f"'tag' needs a tag name, not {kind(arg)}")


def tagged(*tags: Any) -> People:
    """The subscribers with any of these tags."""
    names = sorted({normalize_tag(t) for t in tags})
    st = subscriber_tags.c
    return People("id", select(st.subscriber_id).where(
        st.tag == names[0] if len(names) == 1 else st.tag.in_(names)), indexed=True)


# --- segment -----------------------------------------------------------------------------------

def _check_segment(checker: Checker, segment: str, arg: Any, loc: Loc) -> None:
    if not isinstance(arg, str):
        checker.fail(loc, f"'segment' needs a segment name, not {kind(arg)}")
    elif arg not in checker.names:
        known = ", ".join(sorted(checker.names))
        checker.fail(loc, f"unknown segment '{arg}' (defined: {known})")
    else:
        checker.refer(segment, arg, loc)


# --- subscribed_after --------------------------------------------------------------------------

def _check_after(checker: Checker, segment: str, arg: Any, loc: Loc) -> None:
    if when(arg) is None:
        checker.fail(loc, f"'subscribed_after' needs a date like 2026-01-31, not {kind(arg)}")


# --- attr --------------------------------------------------------------------------------------

def _check_attr(checker: Checker, segment: str, arg: Any, loc: Loc) -> None:
    if not isinstance(arg, dict) or not arg:
        checker.fail(loc, "'attr' needs a mapping like {role: press} or {role: {in: [a, b]}}")
        return
    for key, want in arg.items():
        here = (*loc, key)
        if isinstance(want, dict) and set(want) == {"exists"}:
            if not isinstance(want["exists"], bool):
                checker.fail(here, f"attribute '{key}': 'exists' takes true or false")
        elif isinstance(want, dict):
            values = want.get("in")
            if set(want) != {"in"} or not isinstance(values, list) or not values:
                checker.fail(here, f"attribute '{key}' takes a value, {{in: [values]}} or "
                                   "{exists: true|false}")
            elif any(scalar(v) is None for v in values):
                checker.fail(here, f"attribute '{key}': every 'in' value must be text or a "
                                   "number")
        elif not isinstance(key, str):
            checker.fail(here, f"attribute name {key!r} must be text")
        elif scalar(want) is None:
            checker.fail(here, f"attribute '{key}' must equal text or a number, "
                               f"not {kind(want)}")


def _attr_sql(key: str, want: Any) -> ColumnElement[bool]:
    """One attribute test; a missing attribute gives FALSE (never NULL): `(value = x) IS
    TRUE`, which reads the attribute once (SQLite parses the JSON again for each mention)."""
    value = subscribers.c.attributes[key].as_string()
    if isinstance(want, dict) and "exists" in want:
        return value.is_not(None) if want["exists"] else value.is_(None)
    wanted = [scalar(v) for v in want["in"]] if isinstance(want, dict) else [scalar(want)]
    return (value.in_(wanted) if len(wanted) > 1 else value == wanted[0]).is_(true())


def _attr_python(key: str, want: Any, attributes: dict[str, Any]) -> bool:
    present = key in attributes and attributes[key] is not None
    if isinstance(want, dict) and "exists" in want:
        return present is want["exists"]
    if not present:
        return False
    wanted = [scalar(v) for v in want["in"]] if isinstance(want, dict) else [scalar(want)]
    return str(attributes[key]) in wanted


# --- engagement --------------------------------------------------------------------------------

def _engagement(key: str) -> ConditionType:
    """An engagement condition (newsletter.audience.engagement): `opened` and `clicked` are
    sets of people from the event store, `engaged_within` a test of the subscriber's row
    (`last_engaged_at`). Its plain-Python reference needs the events, so it lives with its
    property test (tests/audience/test_engagement_segments.py)."""

    def check(checker: Checker, segment: str, arg: Any, loc: Loc) -> None:
        problem = engagement.problem(key, arg)
        if problem:
            checker.fail(loc, problem)

    def evaluate(reference: Reference, arg: Any, subscriber: Subscriber) -> bool:
        raise NotImplementedError(f"'{key}' is evaluated in SQL only (it reads the events)")

    if key == "engaged_within":
        return ConditionType(key, check, evaluate, compile=lambda comp, arg:
                             engagement.engaged_within(arg, comp.now))
    return ConditionType(key, check, evaluate,
                         people=lambda arg, now: People("email_key",
                                                        engagement.people(key, arg)))


CONDITION_TYPES: dict[str, ConditionType] = {
    c.name: c
    for c in (
        ConditionType(
            "tag", _check_tag,
            lambda ref, arg, sub: normalize_tag(arg) in sub.tags,
            people=lambda arg, now: tagged(arg),
        ),
        ConditionType(
            "attr", _check_attr,
            lambda ref, arg, sub: all(_attr_python(k, v, sub.attributes)
                                      for k, v in arg.items()),
            compile=lambda comp, arg: and_(true(), *(_attr_sql(k, v) for k, v in arg.items())),
        ),
        ConditionType(
            "segment", _check_segment,
            lambda ref, arg, sub: ref.evaluate(ref.rule(arg), sub),
            compile=lambda comp, arg: comp.rule_of(arg),
        ),
        ConditionType(
            "subscribed_after", _check_after,
            lambda ref, arg, sub: sub.created_at >= when(arg),  # type: ignore[operator]
            compile=lambda comp, arg: subscribers.c.created_at >= when(arg),
        ),
        *(_engagement(key) for key in engagement.CONDITIONS),
    )
}
