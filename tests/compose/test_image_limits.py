"""Images that cannot hurt us: a small PNG declaring a huge canvas (a decompression bomb) is
refused before it is decoded, with the file and line that names it, exit 2, no Pillow warning on
the terminal and the process's memory bounded; an image under the limit still builds."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from newsletter.compose import images
from tests.compose.helpers import SAMPLE, issue_dir, line_of
from tests.measured import measured_cli


def blank_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit white PNG of `width` x `height` built row by row: a few kilobytes on disk, a
    huge canvas once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_images_over_the_pixel_limit_are_refused_with_file_and_line(publication: Path) -> None:
    folder = issue_dir(publication)
    sizes = {"wide.png": (8_000, 7_000), "warned.png": (12_000, 12_000),
             "bomb.png": (20_000, 20_000)}
    for name, (width, height) in sizes.items():
        blank_png(folder / name, width, height)
    assert (folder / "bomb.png").stat().st_size < 100_000
    piece = folder / "pieces" / "energy.md"
    piece.write_text(piece.read_text(encoding="utf-8") + "".join(
        f"\n![A blank test image]({name})\n" for name in sizes), encoding="utf-8")
    done, peak_mb = measured_cli(publication, "build", SAMPLE)
    assert done.returncode == 2, done.stdout + done.stderr
    for name, (width, height) in sizes.items():
        line = line_of(piece, f"({name})")
        found = [s for s in done.stderr.splitlines() if f"image '{name}'" in s]
        assert len(found) == 1, done.stderr
        assert f"{piece.relative_to(publication)}:{line}:" in found[0] \
            or f"{piece}:{line}:" in found[0], found[0]
        assert f"{width * height / 1e6:,.0f} megapixels" in found[0]
        assert "more than the 50 megapixels allowed" in found[0]
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr
    assert "unexpected error" not in done.stderr
    print(f"\nbuild refusing three bombs: peak {peak_mb:.0f} MB")
    assert peak_mb < 200  # decoding the 144-megapixel one alone takes about 1 GB


def test_the_limit_counts_every_frame_and_lets_ordinary_images_through(tmp_path: Path) -> None:
    from PIL import Image

    frames = [Image.new("P", (4_000, 2_000), n) for n in range(8)]  # 64 megapixels in all
    frames[0].save(tmp_path / "long.gif", save_all=True, append_images=frames[1:])
    try:
        images.process(tmp_path / "long.gif", 552, tmp_path)
        raise AssertionError("an animation of 64 megapixels was accepted")
    except images.ImageError as exc:
        assert "64 megapixels" in str(exc)
    blank_png(tmp_path / "fine.png", 6_000, 4_000)  # a big photo's size: under the limit
    done = images.process(tmp_path / "fine.png", 552, tmp_path)
    assert (done.source_width, done.width) == (6_000, 1_104)
