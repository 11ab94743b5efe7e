"""The import's staging tables: every good row of the file, checked in the database.

`import_rows` (one row per good CSV row, by its row number) and `import_tags` (its tags, the
`--tag` ones included) are TEMPORARY tables of the import's own connection, as are the two
that applying them uses (`import_chunk`, `import_lacking`: newsletter.audience.merge).
Filling them writes nothing the rest of the world sees (on SQLite a temporary table lives
outside the database file, so no write lock is taken). PostgreSQL is filled with COPY
(psycopg 3), SQLite with executemany. Checks that need the whole file are set-based
statements over them: duplicates within the file (the first row wins) and the erasure list.
A large PostgreSQL import applies its chunks on further connections too, each with staging
tables of its own that `copy_span` fills from the import's, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.audience.csvrows import MAX_PROBLEMS, ImportReport, Row
from newsletter.audience.erasure import any_erased, erased_at, refusal
from newsletter.db.tables import Id, UtcDateTime, subscribers

LOAD_BATCH = 5000
#: PostgreSQL: the sequence `subscribers.id` is drawn from (its BIGSERIAL's)
SUBSCRIBER_IDS = "subscribers_id_seq"
_Json = Text().with_variant(JSONB(), "postgresql")

_md = MetaData()
import_rows = Table(
    "newsletter_import_rows",
    _md,
    Column("line", Integer, primary_key=True, autoincrement=False),  # the CSV row number
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("name", Text),  # NULL: keep the name a known subscriber has
    Column("attributes", _Json),  # NULL: none given
    Column("tags", _Json),  # a JSON list, expanded into import_tags
    Column("status", String(16)),
    Column("subscribed_at", UtcDateTime),
    # PostgreSQL, applied on two connections: the id a new person gets, taken in file order
    # when the row's chunk is handed out (`copy_span`; NULL: known then, or not handed out)
    Column("new_id", Id),
    prefixes=["TEMPORARY"],
)
import_tags = Table(
    "newsletter_import_tags",
    _md,
    Column("line", Integer, nullable=False),  # unique with `tag`: indexed once filled
    Column("tag", String(100), nullable=False),
    prefixes=["TEMPORARY"],
)
#: The rows of the chunk being applied: who they are and what they change (merge.py).
import_chunk = Table(
    "newsletter_import_chunk",
    _md,
    Column("line", Integer, primary_key=True, autoincrement=False),
    Column("subscriber_id", Id),  # NULL until a new person is inserted
    Column("new", Boolean, nullable=False),
    Column("changed", Boolean, nullable=False),  # a known person whom the row changes
    prefixes=["TEMPORARY"],
)
#: Lines of known people who lack a tag their row gives them (the whole file; merge.py).
import_lacking = Table(
    "newsletter_import_lacking",
    _md,
    Column("line", Integer, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)
_TABLES = [import_rows, import_tags, import_chunk, import_lacking]
_LOADED = ("line", "email", "email_key", "name", "attributes", "tags", "status", "subscribed_at")


#: PostgreSQL: memory for each sort and hash of the import's statements (the server's default
#: of 4 MB makes the joins of a large file spill to disk in several batches).
WORK_MEM = "64MB"


def create(conn: Connection) -> None:
    """Empty staging tables on this connection (any left from an earlier import dropped)."""
    drop(conn)
    more_memory(conn)
    _md.create_all(conn, tables=_TABLES)  # the key index: after the load


def more_memory(conn: Connection) -> None:
    """PostgreSQL: WORK_MEM for the statements of the current transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


def drop(conn: Connection) -> None:
    _md.drop_all(conn, tables=_TABLES, checkfirst=True)


def load(conn: Connection, rows: Iterable[Row], batch: int = LOAD_BATCH) -> None:
    """Fill `import_rows` from the file's good rows and index them (`expand_tags` fills
    `import_tags` from them later)."""
    when = UtcDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert when is not None

    def prepared(row: Row) -> tuple[Any, ...]:
        at = row.subscribed_at
        return (*row[:7], None if at is None else when(at))

    if conn.dialect.name == "postgresql":
        _copy(conn, (prepared(r) for r in rows))
    else:
        sql = (f"INSERT INTO {import_rows.name} ({', '.join(_LOADED)}) "
               f"VALUES ({', '.join('?' * len(_LOADED))})")
        it = iter(rows)
        while chunk := [prepared(r) for r in islice(it, batch)]:
            conn.exec_driver_sql(sql, chunk)
    _index_rows(conn)
    analyze(conn, import_rows)


def _index_rows(conn: Connection) -> None:
    conn.execute(text(f"CREATE INDEX ix_{import_rows.name}_key ON {import_rows.name} "
                      "(email_key, line)"))


def _index_tags(conn: Connection) -> None:
    conn.execute(text(f"CREATE UNIQUE INDEX ix_{import_tags.name}_line ON {import_tags.name} "
                      "(line, tag)"))


def expand_tags(conn: Connection) -> None:
    """Fill `import_tags` from the tag lists of the rows staged now, and index it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"INSERT INTO {import_tags.name} (line, tag) SELECT line, "
                          f"jsonb_array_elements_text(tags) FROM {import_rows.name} "
                          "WHERE tags IS NOT NULL"))
    else:
        conn.execute(text(f"INSERT INTO {import_tags.name} (line, tag) SELECT r.line, j.value "
                          f"FROM {import_rows.name} r, json_each(r.tags) j "
                          "WHERE r.tags IS NOT NULL"))
    _index_tags(conn)  # built once, not row by row
    analyze(conn, import_tags)


def _copy(conn: Connection, rows: Iterator[tuple[Any, ...]]) -> None:
    """COPY the rows in through psycopg 3, inside the connection's transaction."""
    raw = conn.connection.driver_connection
    assert raw is not None
    columns = ", ".join(_LOADED)
    with raw.cursor() as cursor, cursor.copy(
        f"COPY {import_rows.name} ({columns}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def reject_duplicates(conn: Connection, report: ImportReport) -> None:
    """Reject every row whose address (compared without case) an earlier row already has."""
    r = import_rows.c
    first = (select(r.email_key, func.min(r.line).label("first")).group_by(r.email_key)
             .having(func.count() > 1).subquery())
    later = and_(r.email_key == first.c.email_key, r.line > first.c.first)
    count = conn.execute(select(func.count()).select_from(import_rows.join(first, later)))
    total = count.scalar_one()
    if not total:
        return
    shown = conn.execute(select(r.line, r.email, first.c.first).select_from(
        import_rows.join(first, later)).order_by(r.line).limit(MAX_PROBLEMS))
    for line, email, original in shown:
        report.reject(line, f"duplicate of row {original} ({email})")
    report.rejected += total - min(total, MAX_PROBLEMS)
    dups = select(r.line).select_from(import_rows.join(first, later)).scalar_subquery()
    conn.execute(delete(import_rows).where(r.line.in_(dups)))


def reject_erased(conn: Connection, secret: str | None, report: ImportReport,
                  lines: tuple[int, int] | None = None) -> int:
    """Reject rows of people not in the database whose address is on the erasure list (all
    rows, or those with `line` in the inclusive range `lines`); return how many."""
    if not any_erased(conn):
        return 0
    r = import_rows.c
    unknown = ~exists().where(subscribers.c.email_key == r.email_key)
    if lines is not None:
        unknown = and_(unknown, r.line.between(*lines))
    last, found = 0, 0
    while True:
        page = conn.execute(select(r.line, r.email).where(unknown, r.line > last)
                            .order_by(r.line).limit(LOAD_BATCH)).all()
        if not page:
            return found
        erased = erased_at(conn, secret, [email for _, email in page])
        gone = [(line, email) for line, email in page if email in erased]
        for line, email in gone:
            report.reject(line, refusal(email, erased[email]))
        if gone:
            conn.execute(delete(import_rows).where(r.line.in_([line for line, _ in gone])))
        found += len(gone)
        last = page[-1][0]


def empty(conn: Connection, table: Table) -> None:
    """Empty a staging table (PostgreSQL: TRUNCATE, which leaves no dead rows behind)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"TRUNCATE {table.name}"))
    else:
        conn.execute(delete(table))


def analyze(conn: Connection, *tables: Table) -> None:
    """PostgreSQL: statistics for freshly filled temporary tables, which autovacuum never
    analyses (without them the planner guesses, and guesses badly at a million rows)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ANALYZE {', '.join(t.name for t in tables)}"))


def next_range(conn: Connection, after: int, size: int) -> tuple[int, int] | None:
    """The inclusive `line` range of the next `size` staged rows after line `after`."""
    r = import_rows.c
    lines = select(r.line).where(r.line > after).order_by(r.line).limit(size).subquery()
    low, high = conn.execute(select(func.min(lines.c.line), func.max(lines.c.line))).one()
    return None if low is None else (low, high)


def index_copied(conn: Connection) -> None:
    """PostgreSQL: what the chunk statements need besides the rows `copy_span` put on this
    connection: their key index, their tags (`expand_tags`: cheaper than copying them too)
    and statistics (from a sample of 3,000 rows, a tenth of the default's, enough for a
    chunk's few plans)."""
    conn.execute(text("SET LOCAL default_statistics_target = 10"))
    _index_rows(conn)
    analyze(conn, import_rows)
    expand_tags(conn)


def copy_span(source: Connection, target: Connection, lines: tuple[int, int]) -> None:
    """PostgreSQL: replace `target`'s staged rows with `source`'s in the inclusive `lines`
    range (binary COPY out of one session into the other, the blocks passed on as they come),
    each row whose address no subscriber has yet given its id (`new_id`, from the subscribers'
    sequence, in line order: PostgreSQL computes a target list that holds a volatile function,
    nextval, after the sort, and an index scan needs no sort). The known are found by a probe
    a row (a scalar subquery, which is never made a hash of every subscriber's key). Inside
    both connections' transactions; `index_copied` after."""
    low, high = (int(n) for n in lines)
    r, t = import_rows.name, import_tags.name
    columns = ", ".join(_LOADED)
    known = f"(SELECT s.id FROM subscribers s WHERE s.email_key = {r}.email_key)"  # a probe
    rows_out = (f"SELECT {columns}, CASE WHEN {known} IS NULL "
                f"THEN nextval('{SUBSCRIBER_IDS}') END "
                f"FROM {r} WHERE line BETWEEN {low} AND {high} ORDER BY line")
    reading, writing = source.connection.driver_connection, target.connection.driver_connection
    assert reading is not None and writing is not None
    source.execute(text("SET LOCAL jit = off"))  # a probe a row costs more than JIT saves
    target.execute(text(f"DROP INDEX IF EXISTS ix_{r}_key, ix_{t}_line"))
    target.execute(text(f"TRUNCATE {r}, {t}"))
    with reading.cursor() as reader, writing.cursor() as writer, \
            reader.copy(f"COPY ({rows_out}) TO STDOUT (FORMAT BINARY)") as copy_out, \
            writer.copy(f"COPY {r} ({columns}, new_id) FROM STDIN (FORMAT BINARY)") as copy_in:
        for block in copy_out:
            copy_in.write(block)
