"""The plan an import's chunks rely on, asserted with EXPLAIN on both databases: a chunk finds
the known people among its rows through the key's index, never by a pass over every subscriber
(a hash join's choice for a few thousand rows, whose cost grows with the list)."""

from __future__ import annotations

from sqlalchemy import Engine, insert, text

from newsletter.audience import import_csv, merge, staging
from newsletter.audience.staging import import_rows


def test_a_chunk_finds_known_people_through_the_keys_index(engine: Engine, write_csv) -> None:
    people = 3000
    import_csv(engine, write_csv("email,name\n" + "".join(f"k{i}@example.org,K{i}\n"
                                                          for i in range(people))))
    pg = engine.dialect.name == "postgresql"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))  # statistics that know the table's size
    with engine.connect() as conn, conn.begin():
        staging.create(conn)
        conn.execute(insert(import_rows), [
            {"line": line, "email": f"n{line}@example.org", "email_key": f"n{line}@example.org"}
            for line in range(2, 2002)])
        conn.execute(text(f"ANALYZE {import_rows.name}"))
        sql = str(merge.looked_up(conn, (2, 2001)).compile(
            conn, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN " if pg else "EXPLAIN QUERY PLAN "
        rows = conn.exec_driver_sql(explain + sql)
        found = "\n".join(" ".join(str(c) for c in row) for row in rows)
    assert "uq_subscribers_email_key" in found, found
    if pg:
        assert "Seq Scan on subscribers" not in found and "Hash" not in found, found
    else:
        assert "SCAN subscribers" not in found, found
