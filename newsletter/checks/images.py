"""Images: sharp enough for phones and light enough for mobile data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newsletter.checks.model import WARNING, Context, Finding
from newsletter.compose.images import SCALE, Processed

KB = 1024
MAX_BYTES = 400 * KB  # one image after processing
MAX_ANIMATED = 1024 * KB  # an animated GIF (not resized by the build)


@dataclass(frozen=True)
class Use:
    """Where an issue uses an image: the file and line that name it."""

    file: Path
    line: int | None
    ref: str  # as written: a local path or a URL
    local: Path | None


def uses(ctx: Context) -> list[Use]:
    """Every image the issue names: the hero, then the images of each piece."""
    issue = ctx.build.issue
    found = []
    hero = issue.manifest.hero
    if hero is not None:
        line = issue.source.line_of(("hero", "image"))
        found.append(Use(issue.folder / "issue.yaml", line, hero.image, issue.hero_file))
    for piece in issue.pieces:
        for image in piece.images:
            found.append(Use(piece.path, image.line, image.ref.src, image.path))
    return found


def _local_findings(use: Use, image: Processed) -> list[Finding]:
    where = {"file": str(use.file), "line": use.line}
    found = []
    if image.animated and image.source_bytes > MAX_ANIMATED:
        found.append(
            Finding(
                WARNING,
                "images.animated",
                f"animated GIF '{use.ref}' is {image.source_bytes / KB:.0f} KB (over "
                f"{MAX_ANIMATED // KB} KB); it loads slowly and Outlook shows only its first frame",
                "cut frames or size, or use a still image linking to the animation",
                **where,
            )
        )
    elif image.bytes > MAX_BYTES:
        found.append(
            Finding(
                WARNING,
                "images.heavy",
                f"image '{use.ref}' is {image.bytes / KB:.0f} KB after processing (over "
                f"{MAX_BYTES // KB} KB); it is slow on mobile data",
                "crop it, or export a chart with fewer colours",
                **where,
            )
        )
    wanted = image.display_width * SCALE
    if not image.animated and image.display_width < image.source_width < wanted:
        found.append(
            Finding(
                WARNING,
                "images.blurry",
                f"image '{use.ref}' is {image.source_width} px wide: wider than it is shown "
                f"({image.display_width} px) but less than twice that, so it looks blurry on "
                "high-density phone screens",
                f"use a source at least {wanted} px wide (the build scales it down)",
                **where,
            )
        )
    return found


def check_images(ctx: Context) -> list[Finding]:
    """Local images (remote ones are probed by `--online`, see checks.online)."""
    findings = []
    for use in uses(ctx):
        image = ctx.build.images.get(use.local)
        if image is not None:
            findings += _local_findings(use, image)
    return findings
