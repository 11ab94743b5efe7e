"""Bad input: every problem is reported at once with file and line, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.compose.helpers import SAMPLE, issue_dir, line_of, replace_in, run


def test_sample_builds_cleanly(publication: Path) -> None:
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert (publication / "dist" / SAMPLE / "email.html").is_file()


def test_missing_piece_file(publication: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    replace_in(manifest, "pieces/cyber.md", "pieces/cyberr.md")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    line = line_of(manifest, "cyberr.md")
    assert f"issue.yaml:{line}: error: piece file 'pieces/cyberr.md' not found" in result.stderr


def test_unknown_expert(publication: Path) -> None:
    piece = issue_dir(publication) / "pieces" / "trade.md"
    replace_in(piece, "expert: david-okafor", "expert: david-okafr")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert f"trade.md:{line_of(piece, 'expert:')}: error: unknown expert 'david-okafr'" in (
        result.stderr
    )
    assert "add it under experts: in newsletter.yaml" in result.stderr


def test_missing_subject(publication: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    text = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(line for line in text if not line.startswith("subject:")))
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert "issue.yaml:1: error: missing required key 'subject'" in result.stderr


def test_wrong_type(publication: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("date: 2026-11-24", "date: [not, a, date]"))
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert f"issue.yaml:{line_of(manifest, 'date:')}: error: 'date' should be a date" in (
        result.stderr
    )


def test_yaml_syntax_error_in_front_matter(publication: Path) -> None:
    piece = issue_dir(publication) / "pieces" / "energy.md"
    replace_in(piece, "title: ", "title: [unclosed ")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert "energy.md:" in result.stderr and "YAML syntax error" in result.stderr


def test_yaml_syntax_error_in_settings_names_line(publication: Path) -> None:
    config = publication / "newsletter.yaml"
    replace_in(config, "reply_to: info@example.org", "reply_to: [info@example.org")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert "newsletter.yaml:" in result.stderr and "YAML syntax error" in result.stderr


def test_unreadable_file(publication: Path) -> None:
    piece = issue_dir(publication) / "pieces" / "egypt.md"
    piece.write_bytes(b"---\ntitle: Caf\xe9\nexpert: samira-haddad\n---\nBody\n")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert "egypt.md: error: not UTF-8 text" in result.stderr


def test_unreadable_permissions(publication: Path) -> None:
    if os.geteuid() == 0:
        # root reads anything; a directory where a file should be is unreadable for everyone
        piece = issue_dir(publication) / "pieces" / "egypt.md"
        piece.unlink()
        piece.mkdir()
        result = run(publication, "build", SAMPLE)
        assert result.exit_code == 2
        assert "egypt.md' not found; it is not a file" in result.stderr
    else:
        piece = issue_dir(publication) / "pieces" / "egypt.md"
        piece.chmod(0)
        result = run(publication, "build", SAMPLE)
        assert result.exit_code == 2
        assert "egypt.md: error: cannot read file" in result.stderr


def test_every_problem_reported_in_one_run(publication: Path) -> None:
    folder = issue_dir(publication)
    replace_in(folder / "issue.yaml", "pieces/cyber.md", "pieces/missing.md")
    replace_in(folder / "pieces" / "trade.md", "expert: david-okafor", "expert: nobody")
    replace_in(folder / "pieces" / "energy.md", "title:", "titel:")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 3, result.stderr
    assert any("missing.md" in e for e in errors)
    assert any("unknown expert 'nobody'" in e for e in errors)
    assert any("energy.md:2: error: missing required key 'title'" in e for e in errors)
    assert "energy.md:2: warning: unknown key 'titel'" in result.stderr


def test_unknown_keys_warn_but_build(publication: Path) -> None:
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text() + "colour_scheme: dark\n")
    replace_in(issue_dir(publication) / "issue.yaml", "subject:", "subjcet: typo\nsubject:")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 0, result.output
    assert "newsletter.yaml:" in result.stderr and "unknown key 'colour_scheme'" in result.stderr
    assert "issue.yaml:" in result.stderr and "unknown key 'subjcet'" in result.stderr


def test_bad_settings_values_all_reported(publication: Path) -> None:
    config = publication / "newsletter.yaml"
    replace_in(config, "reply_to: info@example.org", "reply_to: not-an-address")
    replace_in(config, "archive_url: https://", "archive_url: ftp://")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2
    assert f"newsletter.yaml:{line_of(config, 'reply_to')}: error: 'reply_to'" in result.stderr
    assert f"newsletter.yaml:{line_of(config, 'archive_url')}: error: 'archive_url'" in (
        result.stderr
    )


def test_unknown_issue(publication: Path) -> None:
    result = run(publication, "build", "2099-01-01")
    assert result.exit_code == 2
    assert "no issue '2099-01-01' found" in result.stderr


def test_no_traceback_in_real_process(publication: Path) -> None:
    replace_in(issue_dir(publication) / "issue.yaml", "pieces/cyber.md", "pieces/nope.md")
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "-C", str(publication), "build", SAMPLE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "nope.md' not found" in proc.stderr


def test_failed_build_leaves_previous_output_untouched(publication: Path) -> None:
    assert run(publication, "build", SAMPLE).exit_code == 0
    dist = publication / "dist" / SAMPLE
    before = {p.name: p.read_bytes() for p in dist.iterdir()}
    replace_in(issue_dir(publication) / "pieces" / "cyber.md", "expert: ", "expert: x")
    assert run(publication, "build", SAMPLE).exit_code == 2
    assert {p.name: p.read_bytes() for p in dist.iterdir()} == before
    assert sorted(p.name for p in dist.parent.iterdir()) == [SAMPLE]  # no staging left behind


def test_write_failure_midway_keeps_previous_output(publication: Path, monkeypatch) -> None:
    from newsletter.compose import package

    assert run(publication, "build", SAMPLE).exit_code == 0
    dist = publication / "dist" / SAMPLE
    before = {p.name: p.read_bytes() for p in dist.iterdir()}

    def broken_copy(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(package.shutil, "copyfile", broken_copy)
    replace_in(issue_dir(publication) / "issue.yaml", "subject: ", "subject: Changed ")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 1
    assert "No space left on device; the previous build is unchanged" in result.stderr
    assert {p.name: p.read_bytes() for p in dist.iterdir()} == before
    assert sorted(p.name for p in dist.parent.iterdir()) == [SAMPLE]
