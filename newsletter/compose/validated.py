"""Validation results kept between processes: newsletter.yaml, issue manifests, front matter.

A build validates the same few documents every time. Their result (the model and the warnings;
never a result with errors) is kept under `.newsletter/cache/valid/`, keyed by the document
(its path, its data and the line of each key) and by the code that validates it
(`cache.code_stamp`: the schema and pydantic, among others), so an edited file or an upgrade
validates again. Read back, nothing is validated: pydantic builds no schema and email-validator
is not loaded (about a tenth of a cold build). Entries are pickles: the cache folder is trusted
like the publication's own files, as is Jinja's compiled-template cache beside it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from newsletter.compose import cache as stored
from newsletter.compose.schema import validate
from newsletter.core.errors import Problem
from newsletter.core.yamlsrc import YamlDoc

VALID_CACHE = stored.CACHE / "valid"
_KEPT = 512  # entries in the folder: one per version of each document
M = TypeVar("M", bound=BaseModel)
Result = tuple[M | None, list[Problem]]
_HERE = Path(__file__).resolve().parent
#: the code a cached result was derived with
_VALIDATING = (_HERE / "schema.py", _HERE / "validated.py", _HERE / "publication.py",
               _HERE.parent / "core" / "yamlsrc.py", _HERE.parent / "core" / "errors.py",
               _HERE.parent / "core" / "reputation.py")


def validated(model: type[M], doc: YamlDoc, root: Path | None) -> Result:
    """`schema.validate(model, doc)`, read back from the publication's cache when it has it."""
    return remembered(model, root, (repr(doc.path), repr(doc.data), repr(doc.lines),
                                    str(doc.line_offset)), lambda: validate(model, doc))


def remembered(model: type[M], root: Path | None, parts: tuple[str, ...],
               produce: Callable[[], Result]) -> Result:
    """The result `produce()` gives for the input `parts` identify, kept under `root`."""
    if root is None:
        return produce()
    path = root / VALID_CACHE / f"{stored.key(stamp(), model.__qualname__, *parts)}.pickle"
    found = _read(path, model)
    if found is not None:
        return found
    result = produce()
    instance, problems = result
    if instance is not None and not any(p.severity == "error" for p in problems):
        stored.write(path, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
        stored.prune(path.parent, "*.pickle", _KEPT)
    return result


@cache
def stamp() -> str:
    """The validating code as this process loaded it."""
    return stored.code_stamp(_VALIDATING,
                             ("pydantic", "pydantic_core", "email_validator", "yaml"))


def _read(path: Path, model: type[M]) -> Result | None:
    """A result read back, or None when there is none or it is unreadable."""
    data = stored.read(path)
    if data is None:
        return None
    try:
        instance, problems = pickle.loads(data)
    except Exception:  # noqa: BLE001 - any damage to an entry means "not cached"
        return None
    if type(instance) is not model or not isinstance(problems, list) or not all(
            isinstance(p, Problem) for p in problems):
        return None
    return instance, problems
