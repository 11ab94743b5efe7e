"""`newsletter init` and `newsletter new` create a publication and an issue that build."""

from __future__ import annotations

from pathlib import Path

import yaml

from newsletter.compose.render import PACKAGED_TEMPLATES
from tests.compose.helpers import run


def test_init_then_new_then_build(tmp_path: Path) -> None:
    root = tmp_path / "weekly"
    result = run(root, "init", "--name", "Energy: Weekly")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((root / "newsletter.yaml").read_text())
    assert config["name"] == "Energy: Weekly"
    copied = root / "templates" / "default" / "email.mjml.j2"
    assert copied.read_text() == (PACKAGED_TEMPLATES / "default" / "email.mjml.j2").read_text()
    assert (root / "subscribers" / "segments.yaml").is_file()

    result = run(root, "new", "2026-12-01", "--subject", "Four views on December")
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load((root / "issues" / "2026-12-01" / "issue.yaml").read_text())
    assert manifest["subject"] == "Four views on December"
    assert str(manifest["date"]) == "2026-12-01"

    result = run(root, "build", "2026-12-01")
    assert result.exit_code == 0, result.stderr
    html = (root / "dist" / "2026-12-01" / "email.html").read_text()
    assert "Energy: Weekly" in html and "Headline of the first piece" in html


def test_copied_template_is_used_for_restyling(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    run(root, "init")
    run(root, "new", "first")
    template = root / "templates" / "default" / "email.mjml.j2"
    template.write_text(template.read_text().replace("#102a43", "#5b2a86"))
    assert run(root, "build", "first").exit_code == 0
    assert "#5b2a86" in (root / "dist" / "first" / "email.html").read_text()


def test_init_refuses_existing_publication(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    run(root, "init")
    before = (root / "newsletter.yaml").read_text()
    result = run(root, "init", "--name", "Other")
    assert result.exit_code == 2
    assert "a publication already exists here" in result.stderr
    assert (root / "newsletter.yaml").read_text() == before


def test_new_refuses_bad_or_existing_slug(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    run(root, "init")
    assert run(root, "new", "ok-slug").exit_code == 0
    again = run(root, "new", "ok-slug")
    assert again.exit_code == 2 and "already exists" in again.stderr
    bad = run(root, "new", "Bad Slug!")
    assert bad.exit_code == 2 and "not a usable slug" in bad.stderr


def test_commands_outside_a_publication_explain_what_to_do(tmp_path: Path) -> None:
    result = run(tmp_path, "build", "x")
    assert result.exit_code == 2
    assert "no newsletter.yaml here; run `newsletter init` or pass -C DIR" in result.stderr


def test_init_writes_a_clean_config_and_a_new_issue_is_a_draft(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    assert run(root, "init").exit_code == 0
    lines = (root / "newsletter.yaml").read_text().splitlines()
    assert lines[1] == "name: My Newsletter"
    assert lines[2].startswith("publisher: ")  # no blank line after the name
    [sender] = [line for line in lines if line.startswith("from:")]
    assert sender == "from: {name: My Newsletter, email: newsletter@example.org}"
    assert "" not in lines and not any(line.rstrip() != line for line in lines)
    assert run(root, "new", "2026-12-01").exit_code == 0
    result = run(root, "check", "2026-12-01", "--strict", "--no-spam")
    # the placeholders are the only findings (tests/checks/test_draft.py fills them in)
    assert result.exit_code == 1, result.output
    assert "5 errors, 0 warnings" in result.output
    assert result.output.count("[draft.") == 5


def test_names_that_need_quoting_stay_on_one_line(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    for name in ("Energy: Weekly", "#1 Brief", "Yes", "Ünïcode — digest"):
        (root / "newsletter.yaml").unlink(missing_ok=True)
        assert run(root, "init", "--name", name).exit_code == 0
        text = (root / "newsletter.yaml").read_text()
        assert "\n\n" not in text
        config = yaml.safe_load(text)
        assert config["name"] == name and config["from"]["name"] == name
