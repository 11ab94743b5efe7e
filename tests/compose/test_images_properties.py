"""Property tests of the image stage's rules against plain reference implementations."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from newsletter.compose import images, markdown


def expected_size(width: int, height: int, display: int) -> tuple[int, int]:
    """Reference: at most twice the display width, never scaled up, aspect ratio kept."""
    limit = display * images.SCALE
    if width <= limit:
        return width, height
    return limit, max(1, round(height * limit / width))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.integers(1, 700),
    height=st.integers(1, 400),
    display=st.sampled_from([50, 120, 276]),
    kind=st.sampled_from(["JPEG", "PNG", "P"]),
)
def test_processed_size_follows_the_rule(tmp_path: Path, width, height, display, kind) -> None:
    source = tmp_path / f"in-{width}x{height}.{'jpg' if kind == 'JPEG' else 'png'}"
    image = Image.new("RGB", (width, height), (30, 90, 160))
    if kind == "P":
        image = image.quantize(colors=4)
    image.save(source, "JPEG" if kind == "JPEG" else "PNG")
    result = images.process(source, display, tmp_path)
    assert (result.width, result.height) == expected_size(width, height, display)
    with Image.open(result.path) as out:
        assert out.size == (result.width, result.height)
        assert out.format == ("JPEG" if kind == "JPEG" else "PNG")
        if kind == "P":
            assert out.mode == "P"
    assert result.display_width == min(display, result.width)
    assert (
        abs(result.display_height / result.display_width - height / width)
        <= 2 / min(result.display_width, result.display_height) + 1 / result.display_width
    )
    assert result.name.endswith(result.path.suffix)


def reference_split(title: str) -> tuple[str, str]:
    """Reference: the credit starts at the earliest credit word, found by a plain scan."""
    words = " ".join(title.split())
    for at in range(len(words)):
        if any(words.startswith(w, at) for w in markdown.CREDIT_WORDS):
            return words[:at].strip(), words[at:].strip()
    return words, ""


@given(
    st.lists(
        st.sampled_from(
            ["Queue", "length,", "2015-2026.", "Source:", "Credit:", "Data:", " ", "x"]
        ),
        max_size=12,
    )
)
def test_caption_and_credit_split(parts: list[str]) -> None:
    title = " ".join(parts)
    caption, credit = markdown.split_caption(title)
    assert (caption, credit) == reference_split(title)
    assert " ".join(f"{caption} {credit}".split()) == " ".join(title.split())


def test_a_jpeg_without_exif_round_trips_without_metadata(tmp_path: Path) -> None:
    source = tmp_path / "plain.jpg"
    Image.new("RGB", (300, 200), (200, 10, 10)).save(source, comment=b"secret note")
    data = images.process(source, 600, tmp_path).path.read_bytes()
    assert b"secret note" not in data
    assert Image.open(io.BytesIO(data)).size == (300, 200)
