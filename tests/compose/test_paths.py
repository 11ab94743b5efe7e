"""Paths stay home: every file an issue names (pieces, the hero, images in pieces) resolves
inside the issue folder, symlinks followed; anything else is an error with file and line, and
nothing outside is read or published."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compose.helpers import SAMPLE, issue_dir, line_of, replace_in, run

SECRET_TEXT = "top secret outside the issue"


@pytest.fixture()
def outside(publication: Path) -> Path:
    path = publication / "secret.txt"
    path.write_text(SECRET_TEXT, encoding="utf-8")
    return path


def _refused(publication: Path, file: Path, needle: str, message: str) -> None:
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 2, result.output
    assert f"{file.name}:{line_of(file, needle)}: error: {message}" in result.stderr
    assert "outside the issue folder" in result.stderr
    dist = publication / "dist"
    published = [p.read_bytes() for p in dist.rglob("*") if p.is_file()] if dist.exists() else []
    assert not any(SECRET_TEXT.encode() in data for data in published)


def test_hero_outside_the_folder(publication: Path, outside: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    replace_in(manifest, "image: hero.jpg", "image: ../../secret.txt")
    _refused(publication, manifest, "../../secret.txt", "hero image '../../secret.txt'")


def test_absolute_hero_path(publication: Path, outside: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    replace_in(manifest, "image: hero.jpg", f"image: {outside}")
    _refused(publication, manifest, str(outside), f"hero image '{outside}'")


def test_piece_outside_the_folder(publication: Path, outside: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    replace_in(manifest, "pieces/cyber.md", "../../secret.txt")
    _refused(publication, manifest, "../../secret.txt", "piece file '../../secret.txt'")


def test_symlinked_hero_pointing_out(publication: Path, outside: Path) -> None:
    folder = issue_dir(publication)
    (folder / "hero.jpg").unlink()
    (folder / "hero.jpg").symlink_to(outside)
    manifest = folder / "issue.yaml"
    _refused(publication, manifest, "image: hero.jpg", "hero image 'hero.jpg'")


def test_symlinked_piece_folder_pointing_out(publication: Path, outside: Path) -> None:
    folder = issue_dir(publication)
    elsewhere = publication / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "extra.md").write_text((folder / "pieces" / "cyber.md").read_text("utf-8"),
                                        encoding="utf-8")
    (folder / "linked").symlink_to(elsewhere)
    manifest = folder / "issue.yaml"
    replace_in(manifest, "pieces/cyber.md", "linked/extra.md")
    _refused(publication, manifest, "linked/extra.md", "piece file 'linked/extra.md'")


def test_image_in_a_piece_outside_the_folder(publication: Path, outside: Path) -> None:
    piece = issue_dir(publication) / "pieces" / "trade.md"
    text = piece.read_text(encoding="utf-8").rstrip("\n")
    piece.write_text(text + "\n\nA chart:\n\n![Chart](../../../secret.txt \"Leak\")\n",
                     encoding="utf-8")
    _refused(publication, piece, "../../../secret.txt", "image '../../../secret.txt'")


def test_symlink_inside_the_folder_is_fine(publication: Path) -> None:
    folder = issue_dir(publication)
    (folder / "art").mkdir()
    (folder / "hero.jpg").rename(folder / "art" / "hero.jpg")
    (folder / "hero.jpg").symlink_to(folder / "art" / "hero.jpg")
    result = run(publication, "build", SAMPLE)
    assert result.exit_code == 0, result.output
