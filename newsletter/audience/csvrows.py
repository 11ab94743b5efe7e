"""Reading an import's CSV file: decoded line by line, checked row by row.

The file is read in binary and decoded per line, so memory stays flat and a byte that is not
UTF-8 is reported with its row. A problem with the whole file (no header, broken quoting, not
UTF-8) raises `Fatal`; a bad row goes to the `ImportReport` and is skipped. What comes out is
one `Row` per good line, normalised (the address by email-validator, tags lower-cased, the
name cleaned), ready for the staging table (newsletter.audience.staging).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from newsletter.audience.cells import unescape_row
from newsletter.audience.model import (
    MAX_NAME_LENGTH,
    Status,
    clean_name,
    email_key,
    normalize_email,
    split_tags,
)
from newsletter.audience.subscribers import RESERVED_COLUMNS
from newsletter.core.errors import Problem

MAX_PROBLEMS = 1000  # rejected rows kept for the report (the first by row); the count is exact


@dataclass
class ImportReport:
    """What an import did (or, when it did not apply, would have done)."""

    path: Path
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # rows imported with a cleaned name
    cleaned: int = 0
    committed: bool = False
    chunks: int = 0  # write transactions the changes were applied in
    longest_write_s: float = 0.0  # the longest of them, from its lock taken to its commit

    def reject(self, row: int, message: str) -> None:
        self.rejected += 1
        self.problems.append(Problem(self.path, row, message))
        if len(self.problems) > 2 * MAX_PROBLEMS:
            self.tidy()

    def warn(self, row: int, message: str) -> None:
        self.cleaned += 1
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(Problem(self.path, row, message, severity="warning"))

    def absorb(self, part: ImportReport) -> None:
        """Count in what `part` counted of the same import (a connection's share of the
        applying), then tidy."""
        for count in ("added", "updated", "unchanged", "rejected", "cleaned", "chunks"):
            setattr(self, count, getattr(self, count) + getattr(part, count))
        self.problems += part.problems
        self.warnings += part.warnings
        self.longest_write_s = max(self.longest_write_s, part.longest_write_s)
        self.tidy()

    def tidy(self) -> None:
        """Problems in row order, the first MAX_PROBLEMS of them."""
        self.problems.sort(key=lambda p: p.line or 0)
        del self.problems[MAX_PROBLEMS:]
        self.warnings.sort(key=lambda p: p.line or 0)

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.rejected} rejected")


class Row(NamedTuple):
    """One good CSV row, as the staging table holds it (None: the cell was empty)."""

    line: int
    email: str  # normalised
    key: str  # email_key(email)
    name: str | None
    attributes: str | None  # a JSON object of text values
    tags: str | None  # a JSON list, --tag tags included
    status: str | None
    subscribed_at: dt.datetime | None


class Fatal(Exception):
    """The file cannot be imported at all (`row` None: the whole file)."""

    def __init__(self, row: int | None, message: str):
        super().__init__(message)
        self.row, self.message = row, message


def lines(stream: IO[bytes], progress: Callable[[int], None] | None) -> Iterator[str]:
    """Decoded lines; a leading BOM is dropped; undecodable bytes raise Fatal with the line."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Fatal(number, f"not UTF-8 text (byte {offset + exc.start}); save the file "
                                "as UTF-8 (any program's 'CSV UTF-8' option)") from None
        if number == 1:
            line = line.removeprefix("\ufeff")
        offset += len(raw)
        if progress is not None and number % 1000 == 0:
            progress(offset)
        yield line
    if progress is not None:
        progress(offset)


def _parse_time(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class _Header:
    def __init__(self, cells: list[str]):
        self.names = [c.strip() for c in cells]
        self.index: dict[str, int] = {}
        self.attributes: list[tuple[int, str]] = []
        for i, name in enumerate(self.names):
            if not name:
                raise Fatal(1, f"column {i + 1} of the header has no name")
            reserved = name.lower()
            key = reserved if reserved in RESERVED_COLUMNS else name
            if key in self.index or any(name == a for _, a in self.attributes):
                raise Fatal(1, f"column '{name}' appears twice in the header")
            if reserved in RESERVED_COLUMNS:
                self.index[reserved] = i
            else:
                self.attributes.append((i, name))
        if "email" not in self.index:
            found = ", ".join(self.names)
            raise Fatal(1, f"the header has no 'email' column (found: {found}); the first "
                           "row must name the columns, e.g. email,name,tags")

    def cell(self, record: list[str], name: str) -> str | None:
        i = self.index.get(name)
        return None if i is None else record[i].strip()


def rows(text: Iterable[str], report: ImportReport, extra_tags: set[str]) -> Iterator[Row]:
    """The good rows (bad ones go to the report); row 1 is the header."""
    reader = csv.reader(text, strict=True)
    number = 0
    try:
        header = None
        for record in reader:
            number += 1
            if not record:
                continue
            record = unescape_row(record)  # what `export` protected from spreadsheets
            if header is None:
                header = _Header(record)
                continue
            report.rows += 1
            if len(record) != len(header.names):
                report.reject(number, f"expected {len(header.names)} columns, found "
                                      f"{len(record)}; quote values that contain commas")
                continue
            row = _row(number, record, header, extra_tags, report)
            if row is not None:
                yield row
    except csv.Error as exc:
        raise Fatal(number + 1, f"malformed CSV: {exc}") from None
    if header is None:
        raise Fatal(None, "the file is empty; expected a header row with an 'email' column")
    if report.rows == 0:
        raise Fatal(None, "the file has a header but no subscriber rows")


def _row(
    number: int, record: list[str], header: _Header, extra_tags: set[str], report: ImportReport
) -> Row | None:
    try:
        address = normalize_email(header.cell(record, "email") or "")
    except ValueError as exc:
        report.reject(number, str(exc))
        return None
    try:
        tags = split_tags(header.cell(record, "tags") or "") | extra_tags
    except ValueError as exc:
        report.reject(number, str(exc))
        return None
    status_cell = header.cell(record, "status") or ""
    try:
        status = Status(status_cell.lower()).value if status_cell else None
    except ValueError:
        report.reject(number, f"unknown status {status_cell!r}; use one of "
                              f"{', '.join(s.value for s in Status)}")
        return None
    since = header.cell(record, "subscribed_at") or ""
    try:
        subscribed_at = _parse_time(since) if since else None
    except ValueError:
        report.reject(number, f"subscribed_at {since!r} is not a date like 2026-11-24 "
                              "or 2026-11-24T09:30:00Z")
        return None
    attributes = {name: record[i].strip() for i, name in header.attributes if record[i].strip()}
    raw_name = header.cell(record, "name")
    name = clean_name(raw_name)
    if name != (raw_name or "").strip():
        report.warn(number, f"name cleaned: control characters (line breaks, tabs ...) became "
                            f"spaces and it was cut to {MAX_NAME_LENGTH} characters at most")
    return Row(number, address, email_key(address), name or None,
               json.dumps(attributes) if attributes else None,
               json.dumps(sorted(tags)) if tags else None, status, subscribed_at)
