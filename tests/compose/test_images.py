"""The image stage: a camera JPEG and a chart come out upright, stripped, resized and cached."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from lxml import html as lxml_html
from PIL import ExifTags, Image

from newsletter.checks import run
from newsletter.compose import build_issue, images, write_build
from newsletter.compose.publication import Publication
from newsletter.core.errors import InputError
from tests.compose.helpers import SAMPLE, issue_dir, replace_in

CAMERA = b"Examplecam Z9 serial 4412"
CHART_MD = '![Grid queue by year](chart.png "Queue length, 2015-2026. Source: Example grid data")'


def camera_jpeg(path: Path, size: tuple[int, int] = (4000, 3000)) -> Path:
    """A photo stored sideways (EXIF orientation 6) with GPS and camera tags; top-left red."""
    image = Image.effect_noise(size, 60).convert("RGB")
    image.paste((255, 0, 0), (0, 0, 400, 400))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90 degrees clockwise to show
    exif[ExifTags.Base.Model] = CAMERA.decode()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (38.0, 53.0, 51.0)
    image.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def chart_png(path: Path, size: tuple[int, int] = (1800, 1000)) -> Path:
    """A palette chart with a transparent background and a few solid bars."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    for i, colour in enumerate([(11, 83, 148, 255), (200, 80, 40, 255), (40, 140, 90, 255)]):
        image.paste(colour, (100 + i * 500, 200 + i * 150, 400 + i * 500, size[1] - 50))
    image.quantize(colors=8).save(path, "PNG", pnginfo=None)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """The sample with the camera photo as hero and the chart in the energy piece (built once;
    the cache test, last in this file, changes the photo)."""
    from tests.conftest import copy_sample

    publication = copy_sample(tmp_path_factory.mktemp("images") / "pub")
    folder = issue_dir(publication)
    camera_jpeg(folder / "camera.jpg")
    chart_png(folder / "chart.png")
    replace_in(folder / "issue.yaml", "image: hero.jpg", "image: camera.jpg")
    piece = folder / "pieces" / "energy.md"
    piece.write_text(piece.read_text() + "\n" + CHART_MD + "\n")
    pub = Publication.load(publication)
    build = build_issue(pub, SAMPLE)
    return pub, build, write_build(pub, build)


def _img(build, alt_start: str):
    doc = lxml_html.document_fromstring(build.html)
    return next(i for i in doc.iter("img") if i.get("alt", "").startswith(alt_start))


def test_camera_photo_is_upright_stripped_1200_wide_and_smaller(built) -> None:
    pub, build, dist = built
    source = issue_dir(pub.root) / "camera.jpg"
    hero = build.images.get(source)
    data = (dist / hero.name).read_bytes()
    out = Image.open(io.BytesIO(data))
    assert out.size == (1200, 1600)  # 3000 x 4000 upright, scaled to twice 600 px
    assert out.getpixel((1200 - 20, 20))[0] > 200 > out.getpixel((20, 20))[0]  # red top right
    assert out.info.get("progressive") == 1
    assert not out.getexif() and "exif" not in out.info and "icc_profile" not in out.info
    assert CAMERA not in data and b"Exif" not in data and b"GPS" not in data
    assert len(data) < source.stat().st_size
    img = _img(build, "Illustration")
    assert img.get("src") == f"{pub.config.archive_url}{SAMPLE}/{hero.name}"
    assert (img.get("width"), img.get("height")) == ("600", "800")
    style = img.get("style").replace(" ", "")  # fluid: the column's width, at most its own
    assert "width:100%" in style and "max-width:600px" in style
    assert "height:auto" in img.get("style").replace(" ", "")


def test_chart_keeps_its_palette_and_renders_with_caption_and_credit(built) -> None:
    pub, build, dist = built
    chart = build.images.get(issue_dir(pub.root) / "chart.png")
    out = Image.open(dist / chart.name)
    assert out.mode == "P" and out.size == (1104, 613)  # twice the 552 px text column
    assert out.getpixel((5, 5)) == out.getpixel((1100, 5))  # transparency flattened
    assert out.convert("RGB").getpixel((5, 5)) == images.PLATE
    assert chart.bytes < (issue_dir(pub.root) / "chart.png").stat().st_size * 4
    img = _img(build, "Grid queue by year")
    assert (img.get("width"), img.get("height")) == ("552", "306")
    assert img.get("src").endswith(chart.name)
    caption = img.getnext()
    assert caption.get("class") == "caption"
    assert caption.text_content() == "Queue length, 2015-2026. Source: Example grid data"
    assert caption.find("span").text == "Source: Example grid data"
    assert "[Chart: Grid queue by year] Queue length, 2015-2026. Source: Example" in " ".join(
        build.text.split()
    )


def test_missing_image_in_a_piece_is_an_error_at_its_line(publication: Path) -> None:
    piece = issue_dir(publication) / "pieces" / "cyber.md"
    lines = piece.read_text().splitlines()
    piece.write_text("\n".join([*lines, "", "![A chart](charts/missing.png)", ""]))
    with pytest.raises(InputError) as caught:
        build_issue(Publication.load(publication), SAMPLE)
    [problem] = caught.value.problems
    assert problem.file == piece and problem.line == len(lines) + 2
    assert "charts/missing.png" in problem.message


def test_not_an_image_is_an_error_naming_the_file(publication: Path) -> None:
    (issue_dir(publication) / "hero.jpg").write_text("not a picture")
    with pytest.raises(InputError) as caught:
        build_issue(Publication.load(publication), SAMPLE)
    [problem] = caught.value.problems
    assert problem.file.name == "issue.yaml" and problem.line == 5
    assert "hero.jpg" in problem.message


def _image_findings(publication: Path) -> dict[str, list]:
    pub = Publication.load(publication)
    report = run(pub, build_issue(pub, SAMPLE), spam=False)
    out: dict[str, list] = {}
    for f in report.findings:
        if f.check.startswith("images."):
            out.setdefault(f.check, []).append(f)
    return out


@pytest.mark.slow
def test_image_checks_report_blurry_heavy_and_animated_at_their_lines(
    publication: Path,
) -> None:
    assert _image_findings(publication) == {}
    folder = issue_dir(publication)
    Image.effect_noise((900, 500), 80).convert("RGB").save(folder / "hero.jpg")
    noise = Image.merge("RGB", [Image.effect_noise((1600, 1200), 120) for _ in range(3)])
    noise.save(folder / "noise.jpg", quality=98)
    frames = [Image.effect_noise((600, 600), 90 + i).convert("P") for i in range(12)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=80)
    assert (folder / "anim.gif").stat().st_size > 1024 * 1024
    piece = folder / "pieces" / "trade.md"
    lines = piece.read_text().splitlines()
    piece.write_text("\n".join([*lines, "", "![Static noise](noise.jpg)", "", "![Anim](anim.gif)"]))
    found = _image_findings(publication)
    [blurry] = found["images.blurry"]
    assert blurry.file.endswith("issue.yaml") and blurry.line == 5 and "900 px" in blurry.message
    [heavy] = found["images.heavy"]
    assert heavy.file == str(piece) and heavy.line == len(lines) + 2
    [animated] = found["images.animated"]
    assert animated.file == str(piece) and animated.line == len(lines) + 4
    assert set(found) == {"images.blurry", "images.heavy", "images.animated"}


def test_processing_is_cached_by_content(built, monkeypatch: pytest.MonkeyPatch) -> None:
    pub, build, _ = built

    def fail(*args, **kwargs):
        raise AssertionError("processed again")

    monkeypatch.setattr(images, "_process_bytes", fail)
    images._memory.clear()  # a new process: only the disk cache is left
    again = build_issue(pub, SAMPLE)
    assert again.assets == build.assets
    (pub.root / "issues" / SAMPLE / "camera.jpg").touch()  # same bytes, new mtime
    assert build_issue(pub, SAMPLE).assets == build.assets
    monkeypatch.undo()
    camera_jpeg(issue_dir(pub.root) / "camera.jpg", (4000, 2000))  # new content, new name
    changed = build_issue(pub, SAMPLE)
    assert set(changed.assets) != set(build.assets)
