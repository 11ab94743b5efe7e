"""Results of pure functions of a text, kept in memory and, inside `kept_in(folder)`, on disk.

A cold build derives the same things from the same texts as the build before it (a piece's
HTML, its text part and its images; the issue's date as the language writes it), and deriving
them is mostly importing the library that does it (markdown-it, Babel with its locale data).
A `Memo` keeps every result per text: in memory for the life of the process and, while a build
runs inside `kept_in(folder)`, one JSON file per text under the folder, named by the text and a
stamp of the code that derives the results (`cache.code_stamp`): an edited text or an upgraded
library finds no stale file, and a file that cannot be read is derived again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from newsletter.compose import cache as stored

Json = Any  # str, int, list and dict of them: what survives a trip through a JSON file


class Memo:
    """Results (JSON values) of pure functions of a text, by the text and a result key."""

    def __init__(self, name: str, files: tuple[str | Path, ...], libraries: tuple[str, ...],
                 kept: int = 256) -> None:
        self.name = name
        self._code = (files, libraries)
        self._kept = kept  # texts kept in memory, and files in a folder
        self._entries: dict[str, dict[str, Json]] = {}
        self._folder: ContextVar[Path | None] = ContextVar(f"{name}_folder", default=None)
        self._new: ContextVar[set[str] | None] = ContextVar(f"{name}_new", default=None)

    def get(self, text: str, key: str, derive: Callable[[], Json],
            valid: Callable[[Json], bool]) -> Json:
        """The result `key` of `text`: from memory, from the folder (when `valid` says it has
        the shape `derive` gives), or `derive()`d now."""
        entry = self._entries.get(text)
        folder = self._folder.get()
        if entry is None or folder is not None and key not in entry:
            entry = {**(self._read(folder, text) if folder else {}), **(entry or {})}
            if len(self._entries) >= self._kept:
                self._entries.clear()
            self._entries[text] = entry
        if key in entry and not valid(entry[key]):
            del entry[key]
        if key not in entry:
            entry[key] = derive()
            new = self._new.get()
            if new is not None:
                new.add(text)
        return entry[key]

    @contextmanager
    def kept_in(self, folder: Path) -> Iterator[None]:
        """Inside the block, results are read from and (at its end) written to `folder`."""
        new: set[str] = set()
        tokens = self._folder.set(folder), self._new.set(new)
        try:
            yield
        finally:
            self._folder.reset(tokens[0])
            self._new.reset(tokens[1])
        for text in new:
            entry = self._entries.get(text)
            if entry is not None:
                stored.write(self._path(folder, text),
                             json.dumps(entry, ensure_ascii=False).encode())
        if new:
            stored.prune(folder, f"{self.name}-*.json", self._kept)

    def forget(self) -> None:
        """Drop what this process keeps in memory (as a new process starts)."""
        self._entries.clear()

    def _path(self, folder: Path, text: str) -> Path:
        return folder / f"{self.name}-{stored.key(self.stamp(), text)}.json"

    @cache  # noqa: B019 - one Memo per module, alive as long as the process
    def stamp(self) -> str:
        """The code behind the results, as this process loaded it."""
        return stored.code_stamp(*self._code)

    def _read(self, folder: Path, text: str) -> dict[str, Json]:
        data = stored.read(self._path(folder, text))
        try:
            found = json.loads(data) if data else {}
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
