"""CLI habits: the publication is found from any folder inside it, a typo gets the nearest
command, a closed pipe ends a command quietly, counts read right, `--to` takes a list, and a
segment testing an attribute nobody has says which name was meant."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.cli.common import find_root
from newsletter.core.words import plural
from tests.compose.helpers import run
from tests.conftest import ROOT, SAMPLE_SLUG


def _newsletter(cwd: Path, *args: str, **options) -> subprocess.CompletedProcess:
    """`python -m newsletter ARGS` run in `cwd` (no -C)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_OUTBOX": str(cwd / "outbox")}
    env.pop("NEWSLETTER_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **options)


def test_the_publication_is_found_from_a_folder_inside_it(publication: Path) -> None:
    inside = publication / "issues" / SAMPLE_SLUG / "pieces"
    assert find_root(inside) == publication
    assert find_root(publication) == publication
    assert find_root(publication.parent) == publication.parent  # none above: where it ran
    done = _newsletter(inside.parent, "check", ".", "--no-spam")
    assert done.returncode == 0, done.stderr
    assert f"check {SAMPLE_SLUG}: ok" in done.stdout
    done = _newsletter(inside, "build", SAMPLE_SLUG)
    assert done.returncode == 0, done.stderr
    assert (publication / "dist" / SAMPLE_SLUG / "email.html").is_file()
    assert not (inside / "dist").exists()


def test_init_creates_where_it_is_asked_not_in_the_publication_above(publication: Path) -> None:
    child = publication / "spin-off"
    child.mkdir()
    done = _newsletter(child, "init", "--name", "Spin-off")
    assert done.returncode == 0, done.stderr
    assert (child / "newsletter.yaml").is_file()
    assert "name: Policy Experts Weekly" in (publication / "newsletter.yaml").read_text()


def test_outside_any_publication_the_error_names_the_folder(tmp_path: Path) -> None:
    done = _newsletter(tmp_path, "build", "x")
    assert done.returncode == 2
    assert "newsletter.yaml: error: no newsletter.yaml here" in done.stderr


@pytest.mark.parametrize(("typed", "meant"), [("biuld", "build"), ("isues", "issues"),
                                               ("aprove", "approve"), ("stauts", "status")])
def test_a_typo_gets_the_nearest_command(tmp_path: Path, typed: str, meant: str) -> None:
    result = run(tmp_path, typed)
    assert result.exit_code == 2
    assert f"No such command '{typed}'." in result.stderr
    assert "Did you mean" in result.stderr and f"'{meant}'" in result.stderr


def test_a_closed_pipe_ends_the_command_quietly(publication: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "-C", str(publication),
                             "build", SAMPLE_SLUG], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    _, err = proc.communicate(timeout=120)
    assert err.decode() == ""  # no "unexpected error: BrokenPipeError", no traceback
    assert proc.returncode != 0  # the command could not say what it did
    assert not (publication / ".newsletter" / "last-error.log").exists()


def test_counts_read_right(publication: Path) -> None:
    assert [plural(n, "piece") for n in (0, 1, 2, 1200)] == [
        "0 pieces", "1 piece", "2 pieces", "1,200 pieces"]
    assert plural(1, "batch") == "1 batch" and plural(3, "batch") == "3 batches"
    assert plural(2, "person") == "2 people"
    manifest = publication / "issues" / SAMPLE_SLUG / "issue.yaml"
    text = manifest.read_text()
    for piece in ("  - pieces/cyber.md\n", "  - pieces/egypt.md\n", "  - pieces/trade.md\n"):
        text = text.replace(piece, "")
    manifest.write_text(text)
    result = run(publication, "build", SAMPLE_SLUG)
    assert f"built {SAMPLE_SLUG}: 1 piece, email.html" in result.output


def test_send_test_to_takes_a_list(publication: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.delenv("NEWSLETTER_TRANSPORT", raising=False)
    result = run(publication, "send-test", SAMPLE_SLUG, "--to", "a@example.org, b@example.org",
                 "--to", "c@example.org;d@example.org")
    assert result.exit_code == 0, result.output
    assert "Sent a test to a@example.org, b@example.org, c@example.org, d@example.org" in \
        result.output
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 4
    bad = run(publication, "send-test", SAMPLE_SLUG, "--to", "a@example.org, not-an-address")
    assert bad.exit_code == 2 and "not-an-address" in bad.output


def test_a_segment_testing_an_attribute_nobody_has_names_the_nearest(
        publication: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(tmp_path / "outbox"))
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,Role,Region\nann@example.org,Ann,press,MENA\n"
                   "bo@example.org,Bo,academic,Europe\n")
    assert run(publication, "subscribers", "import", str(csv)).exit_code == 0
    result = run(publication, "segments")
    assert result.exit_code == 0
    segments = publication / "subscribers" / "segments.yaml"
    line = segments.read_text().splitlines().index("  press: {attr: {role: press}}") + 1
    assert (f"{segments}:{line}: warning: segment 'press' tests attribute 'role', which no "
            "subscriber has; did you mean 'Role'?") in result.stderr
    assert "attribute 'country', which no subscriber has" in result.stderr  # no near name
    assert "did you mean" not in [ln for ln in result.stderr.splitlines()
                                  if "'country'" in ln][0]
    sent = run(publication, "send", SAMPLE_SLUG, "--segment", "press", "--dry-run")
    assert "segment 'press' tests attribute 'role'" in sent.stderr
    assert "did you mean 'Role'?" in sent.stderr
    quiet = run(publication, "send", SAMPLE_SLUG, "--segment", "everyone", "--dry-run")
    assert "no subscriber has" not in quiet.stderr
