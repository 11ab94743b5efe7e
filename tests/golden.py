"""Golden output of the sample issue and its Arabic edition. `make regen-golden`
(python -m tests.golden) refreshes it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SLUG = "2026-11-24"
ARABIC_SLUG = "2026-11-24-ar"
SAMPLES = (SAMPLE_SLUG, ARABIC_SLUG)
GOLDEN = ROOT / "tests" / "golden" / SAMPLE_SLUG


def golden_dir(slug: str) -> Path:
    return ROOT / "tests" / "golden" / slug


def build_sample(workdir: Path, slug: str = SAMPLE_SLUG) -> dict[str, bytes]:
    """Build one of the repository's sample issues in a copy under `workdir`; return its files."""
    from newsletter.compose import build_issue, write_build
    from newsletter.compose.publication import Publication
    from tests.conftest import copy_sample

    secret = os.environ.pop("NEWSLETTER_SECRET", None)  # the sample message uses the sample
    try:                                                 # secret; restored for later tests
        pub = Publication.load(copy_sample(workdir / "pub"))
        target = write_build(pub, build_issue(pub, slug))
    finally:
        if secret is not None:
            os.environ["NEWSLETTER_SECRET"] = secret
    return {p.name: p.read_bytes() for p in sorted(target.iterdir())}


def main() -> None:
    for slug in SAMPLES:
        with tempfile.TemporaryDirectory() as tmp:
            files = build_sample(Path(tmp), slug)
        folder = golden_dir(slug)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name, data in files.items():
            if name.endswith((".jpg", ".png", ".gif")):
                continue  # copied assets are checked by identity, not stored twice
            (folder / name).write_bytes(data)
        print(f"wrote {len(list(folder.iterdir()))} golden files to {folder.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
