"""The built sample publication matches the checked-in golden output byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import ARABIC_SLUG, GOLDEN, ROOT, SAMPLE_SLUG, build_sample, golden_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return build_sample(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.iterdir()))
def test_matches_golden(built: dict[str, bytes], name: str) -> None:
    expected = (GOLDEN / name).read_bytes()
    assert built[name] == expected, (
        f"{name} differs from tests/golden/{SAMPLE_SLUG}/{name}; if the change is intended, "
        "run `make regen-golden` and review the diff"
    )


def test_golden_covers_every_output(built: dict[str, bytes]) -> None:
    stored = {p.name for p in GOLDEN.iterdir()}
    produced = {n for n in built if not n.endswith(".jpg")}
    assert (
        stored
        == produced
        == {"email.html", "email.txt", "index.html", "message.eml", "report.json"}
    )


def test_hero_copied_unchanged(built: dict[str, bytes]) -> None:
    source: Path = ROOT / "issues" / SAMPLE_SLUG / "hero.jpg"
    assert built["hero.jpg"] == source.read_bytes()


def test_rebuild_is_byte_identical(tmp_path: Path, built: dict[str, bytes]) -> None:
    assert build_sample(tmp_path) == built


@pytest.fixture(scope="module")
def built_arabic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return build_sample(tmp_path_factory.mktemp("golden-ar"), ARABIC_SLUG)


@pytest.mark.parametrize("name", sorted(p.name for p in golden_dir(ARABIC_SLUG).iterdir()))
def test_arabic_edition_matches_golden(built_arabic: dict[str, bytes], name: str) -> None:
    expected = (golden_dir(ARABIC_SLUG) / name).read_bytes()
    assert built_arabic[name] == expected, (
        f"{name} differs from tests/golden/{ARABIC_SLUG}/{name}; if the change is intended, "
        "run `make regen-golden` and review the diff"
    )
