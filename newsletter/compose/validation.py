"""Checking a parsed YAML document against a schema model without stopping at the first
problem: every pydantic error becomes a Problem with file and line, and every unknown key a
warning (the MkDocs way)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from newsletter.core.errors import Problem
from newsletter.core.yamlsrc import YamlDoc

M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "list_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "date_type": "a date like 2026-11-24",
    "date_parsing": "a date like 2026-11-24",
    "date_from_datetime_parsing": "a date like 2026-11-24",
    "bool_type": "true or false",
}


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "document"
    kind = err["type"]
    if kind == "missing":
        return f"missing required key '{loc}'"
    if kind in _TYPE_WORDS:
        got = type(err.get("input")).__name__
        got = {"NoneType": "nothing", "str": "text", "dict": "a mapping", "list": "a list"}.get(
            got, got
        )
        return f"'{loc}' should be {_TYPE_WORDS[kind]}, not {got}"
    if kind == "too_short":
        return f"'{loc}' must not be empty"
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{loc}': {msg}"


def _model_of(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model'|'dict'|'list', Model) when a field holds models, else None."""
    from typing import get_args, get_origin

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and args and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return "dict", args[1]
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "list", args[0]
    for arg in args:  # Optional[Model]
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return "model", arg
    return None


def unknown_keys(model_cls: type[BaseModel], data: Any, loc: tuple = ()) -> list[tuple]:
    """Key paths in raw `data` that `model_cls` does not define (checked before validation)."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model_cls.model_fields.items()}
    found: list[tuple] = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            found.append((*loc, key))
            continue
        inner = _model_of(field.annotation)
        if inner is None:
            continue
        kind, sub = inner
        if kind == "model":
            found += unknown_keys(sub, value, (*loc, key))
        elif kind == "dict" and isinstance(value, dict):
            for k, v in value.items():
                found += unknown_keys(sub, v, (*loc, key, k))
        elif kind == "list" and isinstance(value, list):
            for i, v in enumerate(value):
                found += unknown_keys(sub, v, (*loc, key, i))
    return found


def validate(model_cls: type[M], doc: YamlDoc) -> tuple[M | None, list[Problem]]:
    """Validate a YAML document against a schema, collecting every problem with its line."""
    data = doc.data
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        return None, [
            Problem(doc.path, doc.line_of(()), f"expected key: value lines, but the file is {what}")
        ]
    problems = [
        Problem(
            doc.path,
            doc.line_of(loc),
            f"unknown key '{'.'.join(map(str, loc))}' is ignored; check its spelling",
            severity="warning",
        )
        for loc in unknown_keys(model_cls, data)
    ]
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        problems += [
            Problem(doc.path, doc.line_of(tuple(e["loc"])), _describe(e)) for e in exc.errors()
        ]
        return None, sorted(problems, key=lambda p: p.line or 0)
    return model, problems
