"""Image stage: make local images fit for email with Pillow, cached by content hash.

Each local image (the hero, and images in pieces) is turned upright from its EXIF orientation,
stripped of every metadata block (GPS, camera serials, comments), flattened onto white where it is
transparent (so a chart stays readable when a client darkens the page), scaled down to twice its
display width (never up) and re-encoded: JPEG at quality 82, progressive; PNG optimised, palette
images kept as palettes. The file name carries a hash of the output, so a changed image gets a
new URL at `<archive_url><slug>/<file>`.

An image over MAX_PIXELS (50 megapixels, all frames together) is refused before it is decoded:
a small file can declare a huge canvas (a "decompression bomb") that would take gigabytes to
decode. Pillow's warnings (its own bomb warning, corrupt EXIF notes) never reach the terminal;
problems are reported with the file and line that names the image.

Processing a 4000 px photo takes a noticeable fraction of a second, so results are cached twice:
in memory (keyed by path, size and modification time) and on disk under `.newsletter/cache/images/`
(keyed by the SHA-256 of the source bytes), so a preview rebuild or a second `newsletter build`
never redoes the work.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.compose.cache import write_atomic
from newsletter.core.errors import Problem

if TYPE_CHECKING:  # Pillow is imported only when an image is processed, not for a cached one
    from PIL import Image

COLUMN_WIDTH = 600  # the email column; the hero spans it
PIECE_WIDTH = 552  # the column less the text padding (24 px each side) of the template
SCALE = 2  # pixels per CSS pixel kept for high-density screens
JPEG_QUALITY = 82
PLATE = (255, 255, 255)  # transparent pixels are flattened onto this light plate
CACHE_VERSION = 3  # bump when processing changes, so old cache entries are ignored
CACHE_DIR = Path(".newsletter") / "cache" / "images"
PHOTO_FORMATS = {"JPEG", "MPO", "WEBP", "HEIF", "TIFF"}
MAX_PIXELS = 50_000_000  # width x height x frames; a 12-megapixel photo is far below


class ImageError(Exception):
    """A local image could not be read or processed."""


@dataclass(frozen=True)
class Processed:
    """One processed image: where its bytes are and what a template needs to show it."""

    name: str  # file name under dist/<slug>/, with a content hash
    path: Path  # the processed file in the cache
    width: int  # pixel size of the processed file
    height: int
    display_width: int  # CSS pixels it is shown at in the email
    display_height: int
    source_width: int  # pixel size of the source after EXIF rotation
    source_height: int
    source_bytes: int
    bytes: int
    format: str  # "JPEG", "PNG" or "GIF"
    animated: bool

    @property
    def kind(self) -> str:
        """How the text part names it: photographs are photos, everything else a chart."""
        return "Photo" if self.format == "JPEG" else "Chart"


_memory: dict[tuple, Processed] = {}


def process(source: Path, display_width: int, cache_root: Path) -> Processed:
    """Process `source` for display at `display_width` CSS pixels, using the caches if possible.

    `cache_root` is the publication root; the disk cache lives under `.newsletter/` there.
    Raises ImageError when the file is not an image Pillow can read.
    """
    try:
        stat = source.stat()
    except OSError as exc:
        raise ImageError(f"cannot read {source.name}: {exc.strerror or exc}") from exc
    key = (str(source), stat.st_size, stat.st_mtime_ns, display_width, str(cache_root))
    found = _memory.get(key)
    if found is not None and found.path.is_file():
        return found
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    cache = cache_root / CACHE_DIR
    index = cache / f"{digest[:40]}-{display_width}-v{CACHE_VERSION}.json"
    result = _from_index(index, cache)
    if result is None:
        result = _process_bytes(data, source.stem, display_width, cache)
        write_atomic(index, json.dumps(_to_json(result)).encode())
    _memory[key] = result
    return result


def _to_json(result: Processed) -> dict:
    fields = asdict(result)
    fields["path"] = result.path.name
    return fields


def _from_index(index: Path, cache: Path) -> Processed | None:
    try:
        fields = json.loads(index.read_text(encoding="utf-8"))
        fields["path"] = cache / fields["path"]
        result = Processed(**fields)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return result if result.path.is_file() else None


def _too_large(pixels: int, size: tuple[int, int]) -> ImageError:
    return ImageError(f"{size[0]:,} x {size[1]:,} pixels ({pixels / 1e6:,.0f} megapixels) is "
                      f"more than the {MAX_PIXELS // 1_000_000} megapixels allowed; export a "
                      "smaller image")


def _process_bytes(data: bytes, stem: str, display_width: int, cache: Path) -> Processed:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes never reach the terminal...
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # ...its bomb alarm stops
        try:
            return _decode(data, stem, display_width, cache)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            found = re.search(r"(\d+) pixels", str(exc))  # Pillow names the size, not the sides
            pixels = int(found.group(1)) if found else 0
            raise ImageError(f"an image of {pixels / 1e6:,.0f} megapixels is more than the "
                             f"{MAX_PIXELS // 1_000_000} megapixels allowed; export a smaller "
                             "image") from None


def _decode(data: bytes, stem: str, display_width: int, cache: Path) -> Processed:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            pixels = image.width * image.height * max(1, getattr(image, "n_frames", 1))
            if pixels > MAX_PIXELS:
                raise _too_large(pixels, image.size)
            image.load()
            source_format = image.format or ""
            animated = bool(getattr(image, "is_animated", False))
            if animated:
                out, fmt, size = _animated(image), "GIF", image.size
                source_size = image.size
            else:
                upright = ImageOps.exif_transpose(image)
                source_size = upright.size
                out, fmt, size = _still(upright, source_format, display_width * SCALE)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"not an image Pillow can read ({exc})") from exc
    ext = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}[fmt]
    name = f"{_safe_stem(stem)}-{hashlib.sha256(out).hexdigest()[:12]}.{ext}"
    path = cache / name
    if not path.is_file():
        write_atomic(path, out)
    shown = min(display_width, size[0])
    return Processed(
        name=name,
        path=path,
        width=size[0],
        height=size[1],
        display_width=shown,
        display_height=max(1, round(size[1] * shown / size[0])),
        source_width=source_size[0],
        source_height=source_size[1],
        source_bytes=len(data),
        bytes=len(out),
        format=fmt,
        animated=animated,
    )


def _safe_stem(stem: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "image"


def _still(image: Image.Image, source_format: str, max_width: int) -> tuple[bytes, str, tuple]:
    """Re-encode one frame: sRGB, flattened, at most `max_width` wide, without metadata."""
    from PIL import Image

    palette = image.mode in ("P", "1", "L") and source_format in ("PNG", "GIF")
    colours = len(image.getcolors(256) or []) if palette else 0
    image = _to_srgb(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        plate = Image.new("RGBA", rgba.size, PLATE + (255,))
        image = Image.alpha_composite(plate, rgba).convert("RGB")
    elif image.mode not in ("RGB", "L", "P"):
        image = image.convert("RGB")
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        work = image.convert("RGB") if image.mode == "P" else image
        image = work.resize((max_width, height), Image.Resampling.LANCZOS)
    image.info = {}  # Pillow writes comments and colour profiles from here: drop them all
    buffer = io.BytesIO()
    if source_format in PHOTO_FORMATS:
        image.convert("RGB").save(
            buffer, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True
        )
        return buffer.getvalue(), "JPEG", image.size
    if palette and image.mode != "P":  # back to a palette as small as the source's
        size = min(256, max(colours, 2))
        image = image.convert("RGB").quantize(colors=size, dither=Image.Dither.NONE)
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue(), "PNG", image.size


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert an image with an embedded colour profile to sRGB (the profile is then dropped)."""
    from PIL import ImageCms

    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image.convert("RGB") if image.mode == "CMYK" else image
    try:
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode=mode,
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image.convert("RGB") if image.mode == "CMYK" else image
    return converted if converted is not None else image


def _animated(image: Image.Image) -> bytes:
    """Re-save an animated GIF frame by frame (dropping comments); it is not resized."""
    buffer = io.BytesIO()
    image.seek(0)
    keep = ("loop", "duration", "transparency", "background")
    image.info = {key: value for key, value in image.info.items() if key in keep}
    image.save(
        buffer,
        "GIF",
        save_all=True,
        loop=image.info.get("loop", 0),
        duration=image.info.get("duration", 100),
        disposal=2,
    )
    return buffer.getvalue()


@dataclass
class IssueImages:
    """The processed local images of one issue, by resolved source path."""

    by_source: dict[Path, Processed]

    def get(self, source: Path | None) -> Processed | None:
        return self.by_source.get(source) if source is not None else None

    def assets(self) -> dict[str, Path]:
        """dist/<slug>/ file name -> processed file, for the package stage."""
        return {p.name: p.path for p in self.by_source.values()}


def process_issue(
    cache_root: Path, wanted: list[tuple[Path, int, Path, int | None]]
) -> tuple[IssueImages, list[Problem]]:
    """Process each (source, display width, referring file, line); collect every problem."""
    done: dict[Path, Processed] = {}
    problems: list[Problem] = []
    for source, width, file, line in wanted:
        if source in done:
            continue
        try:
            done[source] = process(source, width, cache_root)
        except ImageError as exc:
            problems.append(Problem(file, line, f"image '{source.name}': {exc}"))
    return IssueImages(done), problems
