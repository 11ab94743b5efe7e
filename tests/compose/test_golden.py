"""The built sample publication matches the checked-in golden output byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

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
    produced = {n for n in built if not n.endswith((".jpg", ".png"))}
    assert (
        stored
        == produced
        == {"email.html", "email.txt", "index.html", "message.eml", "report.json"}
    )


def test_hero_is_published_processed_under_its_content_hash(built: dict[str, bytes]) -> None:
    """The report lists the processed hero; email.html (golden) names it; the bytes match it."""
    images = json.loads(built["report.json"])["images"]
    [(name, facts)] = [(n, f) for n, f in images.items() if n.startswith("hero-")]
    source: Path = ROOT / "issues" / SAMPLE_SLUG / "hero.jpg"
    assert name.endswith(".jpg") and set(built) >= set(images)
    assert name[len("hero-") : -4] == hashlib.sha256(built[name]).hexdigest()[:12]
    assert name.encode() in built["email.html"]
    with Image.open(io.BytesIO(built[name])) as image:
        assert image.size == (facts["width"], facts["height"]) == (1200, 600)
        assert image.info.get("progressive") and not image.getexif()
    assert facts["source_bytes"] == source.stat().st_size


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
