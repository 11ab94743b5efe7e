"""Checking segment rules as written in subscribers/segments.yaml: every problem at once, each
with its line; segments that refer to themselves (through `segment:`) are found too."""

from __future__ import annotations

from typing import Any

from newsletter.audience.conditions import CONDITION_TYPES, kind
from newsletter.core.errors import Problem
from newsletter.core.yamlsrc import Loc, YamlDoc

COMBINATORS = ("all", "any", "none")


class RuleChecker:
    """Validates rule mappings, collecting every problem with its line."""

    def __init__(self, doc: YamlDoc, names: set[str]):
        self.doc, self.names = doc, names
        self.problems: list[Problem] = []
        self.refs: dict[str, list[tuple[str, int]]] = {}

    def fail(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.doc.path, self.doc.line_of(loc), message))

    def refer(self, segment: str, target: str, loc: Loc) -> None:
        """`segment` uses `target` (a `segment:` condition at `loc`)."""
        self.refs.setdefault(segment, []).append((target, self.doc.line_of(loc)))

    def rule(self, segment: str, value: Any, loc: Loc) -> None:
        if value is None and len(loc) == 2:
            return  # `name:` with nothing: everyone
        if not isinstance(value, dict):
            self.fail(loc, f"a rule must be a mapping like {{tag: cyber}}, not {kind(value)}")
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
