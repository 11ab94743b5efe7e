"""CSV import: streaming, one transaction, upsert that never re-activates a retired address.

The file is read line by line in binary and decoded per line, so memory stays flat and a byte
that is not UTF-8 is reported with its row. Rows are validated, then upserted in batches;
duplicates within the file are caught with a temporary table of the addresses seen so far
(the database, not Python, holds that set). Any fatal problem, `--strict` with a bad row, or an
interruption rolls the whole transaction back: the database is left as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    select,
    update,
)

from newsletter.audience.cells import unescape_row
from newsletter.audience.erasure import erased_at, refusal
from newsletter.audience.history import Change, Source
from newsletter.audience.history import rows as history_rows
from newsletter.audience.model import (
    MAX_NAME_LENGTH,
    RETIRED,
    Status,
    clean_name,
    email_key,
    normalize_email,
    normalize_tag,
    split_tags,
    utcnow,
)
from newsletter.audience.statuses import Change as StatusChange
from newsletter.audience.statuses import State, decide
from newsletter.audience.subscribers import RESERVED_COLUMNS, tags_of
from newsletter.core.errors import InputError, Problem
from newsletter.db.engine import write_connection
from newsletter.db.tables import subscriber_history, subscriber_tags, subscribers

BATCH_SIZE = 2000
MAX_PROBLEMS = 1000  # rejected rows kept for the report; the count is always exact

_seen_md = MetaData()
_seen = Table(
    "newsletter_import_seen",
    _seen_md,
    Column("key", String(320), primary_key=True),
    Column("row", Integer, nullable=False),
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
    postgresql_on_commit="DROP",
)


@dataclass
class ImportReport:
    """What an import did (or, when it was rolled back, would have done)."""

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

    def reject(self, row: int, message: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(self.path, row, message))

    def warn(self, row: int, message: str) -> None:
        self.cleaned += 1
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(Problem(self.path, row, message, severity="warning"))

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.rejected} rejected")


@dataclass
class _Row:
    number: int
    email: str
    key: str
    name: str | None
    tags: set[str]
    attributes: dict[str, str]
    status: Status | None
    subscribed_at: dt.datetime | None


class _Fatal(Exception):
    def __init__(self, row: int | None, message: str):
        super().__init__(message)
        self.row, self.message = row, message


def _lines(stream: IO[bytes], progress: Callable[[int], None] | None) -> Iterator[str]:
    """Decoded lines; a leading BOM is dropped; undecodable bytes raise _Fatal with the line."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Fatal(number, f"not UTF-8 text (byte {offset + exc.start}); save the file "
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
                raise _Fatal(1, f"column {i + 1} of the header has no name")
            reserved = name.lower()
            key = reserved if reserved in RESERVED_COLUMNS else name
            if key in self.index or any(name == a for _, a in self.attributes):
                raise _Fatal(1, f"column '{name}' appears twice in the header")
            if reserved in RESERVED_COLUMNS:
                self.index[reserved] = i
            else:
                self.attributes.append((i, name))
        if "email" not in self.index:
            found = ", ".join(self.names)
            raise _Fatal(1, f"the header has no 'email' column (found: {found}); the first "
                            "row must name the columns, e.g. email,name,tags")

    def cell(self, record: list[str], name: str) -> str | None:
        i = self.index.get(name)
        return None if i is None else record[i].strip()


def _rows(lines: Iterable[str], report: ImportReport, extra_tags: set[str]) -> Iterator[_Row]:
    """Validated rows (bad ones go to the report); row 1 is the header."""
    reader = csv.reader(lines, strict=True)
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
        raise _Fatal(number + 1, f"malformed CSV: {exc}") from None
    if header is None:
        raise _Fatal(None, "the file is empty; expected a header row with an 'email' column")
    if report.rows == 0:
        raise _Fatal(None, "the file has a header but no subscriber rows")


def _row(
    number: int, record: list[str], header: _Header, extra_tags: set[str], report: ImportReport
) -> _Row | None:
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
        status = Status(status_cell.lower()) if status_cell else None
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
    name, changed = clean_name(header.cell(record, "name"))
    if changed:
        report.warn(number, f"name cleaned: control characters (line breaks, tabs ...) became "
                            f"spaces and it was cut to {MAX_NAME_LENGTH} characters at most")
    return _Row(number, address, email_key(address), name or None,
                tags, attributes, status, subscribed_at)


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, skipping SQLAlchemy's per-row
    parameter machinery (the import's hot path) but using each column type's own bind
    conversion, so the stored values are exactly what `conn.execute(insert(...))` stores."""
    if not rows:
        return
    names = list(rows[0])
    dialect = conn.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    procs = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    sql = (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
           f"({', '.join(dialect.identifier_preparer.quote(n) for n in names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    params = [
        tuple(row[n] if p is None else p(row[n]) for n, p in zip(names, procs, strict=True))
        for row in rows
    ]
    conn.exec_driver_sql(sql, params)


class _Upserter:
    """Applies batches of validated rows inside the caller's transaction."""

    def __init__(self, conn: Connection, report: ImportReport, source: str,
                 secret: str | None = None):
        self.conn, self.report, self.source, self.secret = conn, report, source, secret
        self.now = utcnow()
        _seen.drop(conn, checkfirst=True)
        _seen.create(conn)

    def close(self) -> None:
        _seen.drop(self.conn, checkfirst=True)

    def _unique(self, batch: list[_Row]) -> list[_Row]:
        """Drop (and report) addresses already seen earlier in the file."""
        first: dict[str, int] = {}
        keep: list[_Row] = []
        for row in batch:
            if row.key in first:
                self.report.reject(row.number, f"duplicate of row {first[row.key]} ({row.email})")
            else:
                first[row.key] = row.number
                keep.append(row)
        earlier = {
            key: row
            for key, row in self.conn.execute(
                select(_seen.c.key, _seen.c.row).where(_seen.c.key.in_(first))
            )
        }
        unique = []
        for row in keep:
            if row.key in earlier:
                self.report.reject(row.number, f"duplicate of row {earlier[row.key]} ({row.email})")
            else:
                unique.append(row)
        _bulk_insert(self.conn, _seen, [{"key": r.key, "row": r.number} for r in unique])
        return unique

    def apply(self, batch: list[_Row]) -> None:
        rows = self._unique(batch)
        if not rows:
            return
        cols = subscribers.c
        existing = {
            r.email_key: r
            for r in self.conn.execute(
                select(cols.id, cols.email_key, cols.name, cols.status, cols.attributes,
                       cols.status_changed_at).where(
                    cols.email_key.in_([r.key for r in rows])
                )
            )
        }
        known_tags = tags_of(self.conn, [r.id for r in existing.values()])
        new_rows = [r for r in rows if r.key not in existing]
        erased = erased_at(self.conn, self.secret, [r.email for r in new_rows])
        for row in new_rows:
            if row.email in erased:
                self.report.reject(row.number, refusal(row.email, erased[row.email]))
        new_rows = [r for r in new_rows if r.email not in erased]
        changes: list[dict[str, Any]] = []
        tag_rows: list[dict[str, Any]] = []
        trail: list[Change] = []
        for row in rows:
            old = existing.get(row.key)
            if old is None:
                continue
            change = self._merge(row, old, known_tags.get(old.id, set()), tag_rows)
            if change is None:
                self.report.unchanged += 1
            else:
                changes.append(change)
                if change["b_status"] != old.status:
                    trail.append(Change(old.id, "status", old.status, change["b_status"]))
        if new_rows:
            _bulk_insert(self.conn, subscribers, [self._new(r) for r in new_rows])
            ids = dict(
                self.conn.execute(
                    select(cols.email_key, cols.id).where(
                        cols.email_key.in_([r.key for r in new_rows])
                    )
                ).all()
            )
            for row in new_rows:
                tag_rows += [{"subscriber_id": ids[row.key], "tag": t} for t in row.tags]
                trail.append(Change(ids[row.key], "status", None, row.status or Status.ACTIVE))
            self.report.added += len(new_rows)
        if changes:
            self.conn.execute(
                update(subscribers)
                .where(subscribers.c.id == bindparam("b_id"))
                .values(
                    name=bindparam("b_name"),
                    attributes=bindparam("b_attributes"),
                    status=bindparam("b_status"),
                    status_changed_at=bindparam("b_status_changed_at"),
                    updated_at=bindparam("b_updated_at"),
                ),
                changes,
            )
            self.report.updated += len(changes)
        _bulk_insert(self.conn, subscriber_tags, tag_rows)
        trail += [Change(t["subscriber_id"], "tag", None, t["tag"]) for t in tag_rows]
        _bulk_insert(self.conn, subscriber_history, history_rows(Source.IMPORT, trail, self.now))

    def _new(self, row: _Row) -> dict[str, Any]:
        joined = row.subscribed_at or self.now
        return {
            "email": row.email, "email_key": row.key, "name": row.name or "",
            "status": row.status or Status.ACTIVE, "attributes": row.attributes,
            "source": self.source, "created_at": joined, "updated_at": self.now,
            "status_changed_at": joined if row.status in (None, Status.ACTIVE) else self.now,
        }

    def _merge(
        self, row: _Row, old: Any, tags: set[str], tag_rows: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The UPDATE parameters for a known address, or None when nothing changes."""
        name = row.name if row.name is not None else old.name
        attributes = {**(old.attributes or {}), **row.attributes}
        status, changed_at = old.status, None
        # A row may retire an address (up the status ladder, as every path does), but nothing
        # in a file re-activates a retired one: an import is not consent.
        if row.status in RETIRED:
            now_s = int(self.now.timestamp())
            new = decide(State(Status(old.status), int(old.status_changed_at.timestamp())),
                         StatusChange(row.key, row.status, now_s), now_s)
            if new is not None:
                status, changed_at = new.status, self.now
        new_tags = row.tags - tags
        tag_rows += [{"subscriber_id": old.id, "tag": t} for t in new_tags]
        if name == old.name and attributes == (old.attributes or {}) and status == old.status:
            if not new_tags:
                return None
        return {
            "b_id": old.id, "b_name": name, "b_attributes": attributes, "b_status": status,
            "b_status_changed_at": changed_at or old.status_changed_at, "b_updated_at": self.now,
        }


def import_csv(
    engine: Engine,
    path: Path,
    *,
    tags: Iterable[str] = (),
    strict: bool = False,
    source: str | None = None,
    secret: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import subscribers from a CSV file in one transaction and return the report.

    Raises InputError (nothing changed) when the file cannot be read as CSV, or, with
    `strict`, when any row is bad. `progress(bytes_read)` is called as the file is read.
    Addresses on the erasure list are rejected (checking it needs `secret` once it holds any).
    """
    path = Path(path)
    report = ImportReport(path=path)
    try:
        extra = {normalize_tag(t) for t in tags}
    except ValueError as exc:
        raise InputError(Problem(path, None, f"--tag: {exc}")) from None
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InputError(Problem(path, None, f"cannot read file: {exc.strerror}")) from None
    with stream, write_connection(engine) as conn:  # SQLite: the write lock up front
        try:
            with conn.begin():
                upserter = _Upserter(conn, report, source or f"import:{path.name}", secret)
                batch: list[_Row] = []
                for row in _rows(_lines(stream, progress), report, extra):
                    batch.append(row)
                    if len(batch) >= batch_size:
                        upserter.apply(batch)
                        batch = []
                upserter.apply(batch)
                upserter.close()
                report.problems.sort(key=lambda p: p.line or 0)
                report.warnings.sort(key=lambda p: p.line or 0)
                if strict and report.rejected:
                    raise _Rollback()
        except _Fatal as exc:
            raise InputError(Problem(path, exc.row, exc.message)) from None
        except _Rollback:
            return report
    report.committed = True
    return report


class _Rollback(Exception):
    """Raised inside the transaction to undo it (strict mode with bad rows)."""
