"""CSV import: upsert, merging, the never-resubscribe rule, bad rows, bad files, atomicity."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select

from newsletter.audience import (
    Status,
    add_subscriber,
    get_subscriber,
    import_csv,
    set_status,
    unsubscribe,
)
from newsletter.core.errors import InputError
from newsletter.db.tables import subscriber_tags, subscribers


def snapshot(engine: Engine) -> list[tuple]:
    """Every subscriber and tag row, to prove that nothing changed."""
    with engine.connect() as conn:
        subs = conn.execute(select(subscribers).order_by(subscribers.c.id)).all()
        tags = conn.execute(select(subscriber_tags).order_by(*subscriber_tags.c)).all()
    return [tuple(r) for r in subs] + [tuple(r) for r in tags]


def get(engine: Engine, email: str):
    with engine.connect() as conn:
        return get_subscriber(conn, email)


def test_import_adds_subscribers_with_tags_and_attributes(engine: Engine, write_csv) -> None:
    path = write_csv(
        "email,name,tags,role,country\n"
        "Ann.Lee@Example.ORG,Ann Lee,Energy; trade ,press,EG\n"
        "bob@example.org,,cyber,,\n"
    )
    report = import_csv(engine, path, tags=["weekly"])
    assert (report.added, report.updated, report.unchanged, report.rejected) == (2, 0, 0, 0)
    assert report.committed
    ann = get(engine, "ann.lee@example.org")
    assert ann.email == "Ann.Lee@example.org"  # normalised: domain lower-cased, local part kept
    assert ann.name == "Ann Lee" and ann.status == Status.ACTIVE
    assert ann.tags == ("energy", "trade", "weekly")
    assert ann.attributes == {"role": "press", "country": "EG"}
    assert ann.source == "import:people.csv"
    bob = get(engine, "BOB@example.org")
    assert bob.name == "" and bob.tags == ("cyber", "weekly") and bob.attributes == {}


def test_reimport_merges_name_tags_and_attributes(engine: Engine, write_csv) -> None:
    import_csv(engine, write_csv("email,name,tags,role,city\na@example.org,Ann,x,press,Cairo\n"
                                 "b@example.org,Bo,y,,\n"))
    second = write_csv("email,name,tags,role,org\nA@EXAMPLE.org,Ann Lee,z,,Daily\n"
                       "b@example.org,Bo,y,,\nc@example.org,Cy,,,\n", "second.csv")
    report = import_csv(engine, second)
    assert (report.added, report.updated, report.unchanged) == (1, 1, 1)
    ann = get(engine, "a@example.org")
    assert ann.name == "Ann Lee"
    assert ann.tags == ("x", "z")  # import adds tags, never removes them
    assert ann.attributes == {"role": "press", "city": "Cairo", "org": "Daily"}  # empty keeps
    assert ann.updated_at > ann.created_at


@pytest.mark.parametrize("retired", [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED])
def test_import_never_makes_a_retired_address_active(engine: Engine, write_csv, retired) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "gone@example.org", name="Gone")
        set_status(conn, "gone@example.org", retired)
    before = get(engine, "gone@example.org")
    path = write_csv("email,name,tags,status\nGONE@example.org,Back Again,news,active\n")
    report = import_csv(engine, path)
    assert report.rejected == 0
    after = get(engine, "gone@example.org")
    assert after.status == retired
    assert after.status_changed_at == before.status_changed_at
    assert after.name == "Back Again" and after.tags == ("news",)  # details still merge


def test_status_column_can_retire_but_not_revive(engine: Engine, write_csv) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "a@example.org")
    path = write_csv("email,status\na@example.org,unsubscribed\nnew@example.org,bounced\n")
    report = import_csv(engine, path)
    assert (report.added, report.updated) == (1, 1)
    assert get(engine, "a@example.org").status == Status.UNSUBSCRIBED
    assert get(engine, "new@example.org").status == Status.BOUNCED


def test_subscribed_at_sets_the_join_date_of_new_rows_only(engine: Engine, write_csv) -> None:
    path = write_csv("email,subscribed_at\na@example.org,2024-03-14\n")
    import_csv(engine, path)
    assert get(engine, "a@example.org").created_at == dt.datetime(2024, 3, 14, tzinfo=dt.UTC)
    import_csv(engine, write_csv("email,subscribed_at\na@example.org,2020-01-01\n", "b.csv"))
    assert get(engine, "a@example.org").created_at == dt.datetime(2024, 3, 14, tzinfo=dt.UTC)


def test_bad_rows_are_reported_with_row_numbers_and_the_rest_imported(
    engine: Engine, write_csv
) -> None:
    path = write_csv(
        "email,name,tags\n"          # row 1
        "ok@example.org,Ok,\n"       # row 2
        "not-an-address,Bad,\n"      # row 3
        "OK@example.org,Dup,\n"      # row 4: duplicate of row 2 (case-insensitive)
        "short@example.org\n"        # row 5: wrong column count
        "\n"                         # row 6: blank, ignored
        "x@example.org,X,,extra\n"   # row 7: wrong column count
        "fine@example.org,Fine,\n"   # row 8
        "bad@example.org,B,\"a;" + "t" * 101 + "\"\n"  # row 9: tag too long
    )
    report = import_csv(engine, path)
    assert (report.added, report.rejected, report.rows) == (2, 5, 7)
    assert report.committed
    rows = [(p.line, p.message) for p in report.problems]
    assert [line for line, _ in rows] == [3, 4, 5, 7, 9]
    assert "not-an-address" in rows[0][1]
    assert rows[1][1].startswith("duplicate of row 2")
    assert "expected 3 columns, found 1" in rows[2][1]
    assert "expected 3 columns, found 4" in rows[3][1]
    assert "longer than 100" in rows[4][1]
    assert all(str(p.file).endswith("people.csv") for p in report.problems)
    assert get(engine, "ok@example.org").name == "Ok"  # the first occurrence wins


def test_duplicates_are_caught_across_batches(engine: Engine, write_csv) -> None:
    lines = ["email"] + [f"p{i}@example.org" for i in range(25)] + ["P3@example.org"]
    report = import_csv(engine, write_csv("\n".join(lines) + "\n"), batch_size=7)
    assert report.added == 25 and report.rejected == 1
    assert report.problems[0].line == 27 and "duplicate of row 5" in report.problems[0].message


def test_strict_rejects_the_whole_file_and_changes_nothing(engine: Engine, write_csv) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "known@example.org", name="Known")
    before = snapshot(engine)
    path = write_csv("email,name\nknown@example.org,Renamed\nnew@example.org,New\nbroken,X\n")
    report = import_csv(engine, path, strict=True, batch_size=1)
    assert not report.committed and report.rejected == 1 and report.problems[0].line == 4
    assert snapshot(engine) == before


def test_utf8_bom_and_crlf_are_accepted(engine: Engine, write_csv) -> None:
    path = write_csv("\ufeffEmail,Name\r\nlucia@example.org,Lucía Romero\r\n".encode())
    report = import_csv(engine, path)
    assert report.added == 1
    assert get(engine, "lucia@example.org").name == "Lucía Romero"


def test_quoted_fields_may_hold_commas_and_newlines(engine: Engine, write_csv) -> None:
    path = write_csv('email,name,note\na@example.org,"Lee, Ann","line one\nline two"\n'
                     "oops\n")
    report = import_csv(engine, path)
    assert get(engine, "a@example.org").attributes == {"note": "line one\nline two"}
    assert report.problems[0].line == 3  # rows, as a spreadsheet counts them


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"", None, "the file is empty"),
        (b"\xef\xbb\xbf\n\n", None, "the file is empty"),
        (b"email,name\n", None, "header but no subscriber rows"),
        (b"name,tags\nAnn,x\n", 1, "no 'email' column (found: name, tags)"),
        (b"email,name,Name\na@example.org,A,B\n", 1, "'Name' appears twice"),
        (b"email,,x\na@example.org,,\n", 1, "column 2 of the header has no name"),
        (b"email,name\na@example.org,Ann\nb@example.org,J\xe9r\xf4me\n", 3, "not UTF-8"),
        (b"email,name\na@example.org,\"Ann\n", 2, "malformed CSV"),
    ],
    ids=["empty", "bom-only", "header-only", "no-email", "dup-column", "blank-column",
         "latin-1", "unclosed-quote"],
)
def test_bad_files_are_one_clear_error_and_change_nothing(
    engine: Engine, write_csv, content: bytes, line: int | None, message: str
) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "a@example.org", name="Before")
    before = snapshot(engine)
    with pytest.raises(InputError) as info:
        import_csv(engine, write_csv(content), batch_size=1)
    (problem,) = info.value.problems
    assert message in problem.message
    assert problem.line == line and str(problem.file).endswith("people.csv")
    assert snapshot(engine) == before


def test_missing_file_is_an_input_error(engine: Engine, tmp_path) -> None:
    with pytest.raises(InputError, match="cannot read file"):
        import_csv(engine, tmp_path / "nope.csv")


def test_interrupted_import_leaves_the_database_as_it_was(engine: Engine, write_csv) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "keep@example.org", name="Keep", tags=["old"])
        add_subscriber(conn, "left@example.org")
        unsubscribe(conn, "left@example.org")
    before = snapshot(engine)
    rows = ["email,name,tags", "keep@example.org,Changed,new"]
    rows += [f"p{i}@example.org,P{i},bulk" for i in range(5000)]
    path = write_csv("\n".join(rows) + "\n")
    calls = []

    def interrupt(done: int) -> None:
        calls.append(done)
        if len(calls) == 4:  # several batches have been written inside the transaction
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv(engine, path, progress=interrupt, batch_size=500)
    assert snapshot(engine) == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 2
    # The database is usable afterwards and the same import then succeeds in full.
    assert import_csv(engine, path).added == 5000
