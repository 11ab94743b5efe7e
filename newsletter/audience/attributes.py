"""Attribute names in segment rules that no subscriber has, with the nearest name that exists.

Attribute names are stored as the CSV header spelled them, and a segment's `attr: {role: ...}`
compares names exactly: a header `Role` leaves `attr: {role: press}` matching nobody. The
segment is still valid (an attribute may arrive with the next import), so this is a warning,
shown by `newsletter segments` and before `newsletter send`, naming the closest existing
name ("did you mean 'Role'?").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, exists, select, text

from newsletter.audience.segments import COMBINATORS, Segments
from newsletter.core.errors import Problem
from newsletter.db.tables import subscribers


def _walk(segments: Segments, rule: Any, seen: set[str]) -> Iterator[str]:
    if not isinstance(rule, dict):
        return
    for key, arg in rule.items():
        if key in COMBINATORS and isinstance(arg, list):
            for item in arg:
                yield from _walk(segments, item, seen)
        elif key == "attr" and isinstance(arg, dict):
            yield from (name for name in arg if isinstance(name, str))
        elif key == "segment" and isinstance(arg, str) and arg not in seen:
            seen.add(arg)
            yield from _walk(segments, segments.get(arg).rule, seen)


def attributes_of(segments: Segments, name: str) -> list[str]:
    """Attribute names segment `name` tests, those of segments it refers to included."""
    return list(dict.fromkeys(_walk(segments, segments.get(name).rule, {name})))


def held(conn: Connection, name: str) -> bool:
    """Whether any subscriber has attribute `name`."""
    return bool(conn.execute(select(exists().where(
        subscribers.c.attributes[name].as_string().is_not(None)))).scalar())


def attribute_names(conn: Connection) -> list[str]:
    """Every attribute name some subscriber has."""
    if conn.dialect.name == "postgresql":
        query = "SELECT DISTINCT jsonb_object_keys(attributes) FROM subscribers"
    else:
        query = "SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.attributes) AS j"
    return sorted(str(row[0]) for row in conn.execute(text(query)))


def nearest(name: str, names: Iterable[str]) -> str | None:
    """The existing name `name` most likely meant: the same but for case, else the closest."""
    names = list(names)
    same = [n for n in names if n.casefold() == name.casefold()]
    if same:
        return same[0]
    folded = {n.casefold(): n for n in names}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None


def unheld_attributes(conn: Connection, segments: Segments,
                      names: Iterable[str] | None = None) -> list[Problem]:
    """A warning for each attribute that segments `names` (default: all) test and no
    subscriber has, with the nearest existing name when there is one."""
    problems: list[Problem] = []
    existing: list[str] | None = None
    for segment in (segments.names if names is None else names):
        for attribute in attributes_of(segments, segment):
            if held(conn, attribute):
                continue
            if existing is None:
                existing = attribute_names(conn)
            guess = nearest(attribute, existing)
            hint = (f"; did you mean '{guess}'? (attribute names are as the CSV header wrote "
                    "them)" if guess else "")
            problems.append(Problem(
                segments.path, segments.get(segment).line,
                f"segment '{segment}' tests attribute '{attribute}', which no subscriber "
                f"has{hint}", severity="warning"))
    return problems
