"""Clean data at the door: names cleaned (with a warning per changed row), addresses stored in
one normal form, IDN domains kept as entered with an ASCII form for transports, non-ASCII local
parts accepted and flagged. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from newsletter.audience import add_subscriber, get_subscriber, import_csv, iter_subscribers
from newsletter.audience.model import ascii_email, clean_name
from newsletter.cli import main


def _hostile_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "name", "tags"])
    writer.writerows([
        ["plain@example.org", "Plain Person", "a"],                       # row 2: untouched
        ["crlf@example.org", "Ann\r\nLee\tJr\x0b\x00.", "a"],             # row 3: cleaned
        ["long@example.org", "L" * 5000, ""],                             # row 4: capped
        ["pipe|name@example.org", "Pipe", ""],                            # row 5: legal address
        ["Leser@Bücher.Example", "IDN", ""],                              # row 6: IDN domain
        ["jürgen@example.org", "Jürgen", ""],                             # row 7: non-ASCII local
        ["PLAIN@Example.ORG", "Dup", ""],                                  # row 8: duplicate
        ["crlf@EXAMPLE.org", "Dup again", ""],                            # row 9: duplicate
        ["  spaced@example.org ", " \u2028 Para\u2029graph  ", ""],       # row 10: cleaned
    ])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")  # with a BOM, as Excel writes


def test_hostile_csv(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(_hostile_csv())
    report = import_csv(engine, path)
    assert report.committed
    assert (report.added, report.rejected) == (7, 2)
    assert [(p.line, "duplicate of row") for p in report.problems] == [
        (8, "duplicate of row"), (9, "duplicate of row")]
    assert "row 2" in report.problems[0].message and "row 3" in report.problems[1].message
    assert [w.line for w in report.warnings] == [3, 4, 10]
    assert all(w.severity == "warning" and "name cleaned" in w.message for w in report.warnings)
    people = {s.email: s for s in iter_subscribers(engine)}
    assert set(people) == {"plain@example.org", "crlf@example.org", "long@example.org",
                           "pipe|name@example.org", "Leser@bücher.example",
                           "jürgen@example.org", "spaced@example.org"}
    assert people["crlf@example.org"].name == "Ann Lee Jr ."
    assert people["long@example.org"].name == "L" * 200
    assert people["spaced@example.org"].name == "Para graph"
    assert people["plain@example.org"].name == "Plain Person"
    idn = people["Leser@bücher.example"]
    assert ascii_email(idn.email) == "Leser@xn--bcher-kva.example" and idn.ascii_local_part
    assert not people["jürgen@example.org"].ascii_local_part
    with engine.connect() as conn:  # any spelling finds the one stored form
        assert get_subscriber(conn, "leser@BÜCHER.example").id == idn.id


def test_add_cleans_the_name_and_stores_attributes_as_text(engine: Engine) -> None:
    with engine.begin() as conn:
        sub, created = add_subscriber(conn, "Zed@Example.org", name="Zed\r\nEvil-Header: x",
                                      attributes={"rank": 7})
    assert created and sub.email == "Zed@example.org"
    assert sub.name == "Zed Evil-Header: x" and sub.attributes == {"rank": "7"}


@pytest.mark.parametrize(("raw", "clean", "changed"), [
    ("Ann Lee", "Ann Lee", False),
    ("  Ann Lee  ", "Ann Lee", False),  # outer spaces only: not worth a warning
    ("Ann\nLee", "Ann Lee", True),
    ("Ann \r\n\t Lee", "Ann Lee", True),
    ("\x1b[31mRed\x1b[0m", "[31mRed [0m", True),
    ("Ann\x85Lee", "Ann Lee", True),  # C1 next-line
    ("x" * 201, "x" * 200, True),
    ("", "", False),
    (None, "", False),
])
def test_clean_name(raw: str | None, clean: str, changed: bool) -> None:
    assert clean_name(raw) == clean
    assert (clean != (raw or "").strip()) == changed  # what an import warns about


def test_cli_add_warns_and_show_flags_the_address(publication: Path, db_url: str) -> None:
    env = {"NEWSLETTER_DATABASE_URL": db_url}

    def run(*args: str):
        return CliRunner().invoke(main, ["-C", str(publication), *args], env=env,
                                  catch_exceptions=False)

    added = run("subscribers", "add", "jürgen@Bücher.example", "--name", "J\nK")
    assert added.exit_code == 0, added.output
    assert "name cleaned to 'J K'" in added.output
    shown = run("subscribers", "show", "JÜRGEN@bücher.example")
    assert shown.exit_code == 0, shown.output
    assert "jürgen@bücher.example" in shown.output
    assert "not ASCII" in shown.output and "SMTPUTF8" in shown.output
    assert "xn--bcher-kva.example" in shown.output
    plain = run("subscribers", "add", "ann@example.org", "--name", "Ann")
    assert "cleaned" not in plain.output
    assert "not ASCII" not in run("subscribers", "show", "ann@example.org").output


def test_cli_import_reports_each_cleaned_row(publication: Path, db_url: str,
                                            tmp_path: Path) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(_hostile_csv())
    result = CliRunner().invoke(main, ["-C", str(publication), "subscribers", "import",
                                       str(path)], env={"NEWSLETTER_DATABASE_URL": db_url})
    assert result.exit_code == 1  # the duplicates were rejected
    for row in (3, 4, 10):
        assert f"hostile.csv:{row}: warning: name cleaned" in result.output
    assert "7 added" in result.output
