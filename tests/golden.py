"""Golden output of the sample issue. `make regen-golden` (python -m tests.golden) refreshes it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SLUG = "2026-11-24"
GOLDEN = ROOT / "tests" / "golden" / SAMPLE_SLUG


def build_sample(workdir: Path) -> dict[str, bytes]:
    """Build the repository's sample issue in a copy under `workdir`; return dist's files."""
    from newsletter.build import build_issue, write_build
    from newsletter.build.publication import Publication
    from tests.conftest import copy_sample

    os.environ.pop("NEWSLETTER_SECRET", None)  # the sample message uses the sample secret
    pub = Publication.load(copy_sample(workdir / "pub"))
    target = write_build(pub, build_issue(pub, SAMPLE_SLUG))
    return {p.name: p.read_bytes() for p in sorted(target.iterdir())}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = build_sample(Path(tmp))
    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    GOLDEN.mkdir(parents=True)
    for name, data in files.items():
        if name.endswith((".jpg", ".png", ".gif")):
            continue  # copied assets are checked by identity, not stored twice
        (GOLDEN / name).write_bytes(data)
    print(f"wrote {len(list(GOLDEN.iterdir()))} golden files to {GOLDEN.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
