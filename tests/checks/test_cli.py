"""`newsletter check`: output formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main
from tests.checks.conftest import ISSUE, edit, write_piece


def run_check(root: Path, *args: str):
    return CliRunner().invoke(main, ["-C", str(root), "check", "2026-11-24", "--no-spam", *args])


def test_sample_passes_strict_and_strict_fails_on_a_warning(publication: Path) -> None:
    result = run_check(publication, "--strict")
    assert result.exit_code == 0, result.output
    assert "check 2026-11-24: ok: 0 errors, 0 warnings" in result.output
    edit(publication / ISSUE / "issue.yaml", "preheader:", "preheadr:")  # an unknown key
    result = run_check(publication, "--strict")
    assert result.exit_code == 1 and "FAILED: 0 errors" in result.output, result.output
    assert "unknown key 'preheadr'" in result.output


def test_errors_exit_1_with_location_and_fix(publication: Path) -> None:
    write_piece(publication, "cyber.md", "A TK figure and a [link](/relative).")
    result = run_check(publication)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    leftover = next(line for line in lines if "[content.leftover]" in line)
    assert "pieces/cyber.md:6: error: leftover placeholder TK" in leftover
    assert lines[lines.index(leftover) + 1].startswith("    fix: ")
    assert "FAILED: 2 errors" in lines[-1]


def test_json_output_is_machine_readable(publication: Path) -> None:
    write_piece(publication, "cyber.md", "A TK figure.")
    result = CliRunner().invoke(
        main, ["-C", str(publication), "check", "2026-11-24", "--no-spam", "--format", "json"]
    )
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["ok"] is False and data["errors"] == 1
    [finding] = [f for f in data["findings"] if f["severity"] == "error"]
    assert finding["check"] == "content.leftover" and finding["line"] == 6
    assert set(finding) == {
        "severity",
        "check",
        "message",
        "fix",
        "file",
        "line",
        "part",
        "excerpt",
    }


def test_an_issue_that_cannot_be_built_exits_2_with_findings(publication: Path) -> None:
    edit(publication / ISSUE / "pieces" / "cyber.md", "expert: tomas-reyes", "expert: nobody")
    result = run_check(publication)
    assert result.exit_code == 2
    assert "cyber.md:3: error: unknown expert 'nobody'" in result.output
