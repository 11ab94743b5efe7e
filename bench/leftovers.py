"""Benchmark the leftover-placeholder check (TK, TODO, lorem ipsum, unrendered tags) on a hostile
5 MB piece.

Target (issue 23): a 5 MB piece, its text part 5 MB too, checked in under a second. The piece is
200,000 "lorem ipsum" hits (and TODOs, inside and outside HTML comments, and unclosed `{{`) on
long lines: the old check looked up each hit's comment state by joining every line before it,
so its time grew with hits x size (200,000 hits took 298 s). It also times the same check on 1,
2 and 4 MB: linear time doubles with the size. Exits 1 if the target is missed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2026-11-24"
TARGET_S = 1.0
MB = 1_000_000
LINE = ("Lorem ipsum dolor sit amet, lorem ipsum again; TODO check this. {{ x "
        "<!-- lorem ipsum TODO in a comment --> lorem ipsum. ")


def hostile(size: int) -> str:
    """About `size` characters of leftovers: long lines of many hits each."""
    per_line = LINE * 200  # ~25 KB lines
    lines = [per_line] * max(1, size // len(per_line))
    return "\n".join(lines) + "\n"


def timed(root: Path, size: int) -> tuple[float, int, int]:
    """(seconds, findings, hits) of check_leftovers on a piece of `size` characters whose text
    part is as large."""
    from newsletter.checks.content import check_leftovers
    from newsletter.checks.model import Context
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    pub = Publication.load(root)
    build = build_issue(pub, SLUG)  # built small; the piece and the text part are then swapped
    body = hostile(size)
    piece = build.issue.pieces[0].path
    piece.write_text("---\ntitle: A\nexpert: elena-marsh\n---\n\n" + body, encoding="utf-8")
    build.text = body
    ctx = Context(pub, build)
    started = time.perf_counter()
    findings = check_leftovers(ctx)
    seconds = time.perf_counter() - started
    hits = body.lower().count("lorem ipsum") + body.count("TODO") + body.count("{{")
    return seconds, len(findings), hits


def main() -> int:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pub"
        root.mkdir()
        shutil.copy(ROOT / "newsletter.yaml", root / "newsletter.yaml")
        shutil.copytree(ROOT / "issues", root / "issues")
        sizes = {}
        for megabytes in (1, 2, 4):
            sizes[megabytes] = timed(root, megabytes * MB)[0]
        seconds, found, hits = timed(root, 5 * MB)
    print(f"load average {load:.2f}")
    for megabytes, taken in sizes.items():
        print(f"leftover check, {megabytes} MB piece and text part: {taken:.2f} s")
    print(f"leftover check, 5 MB piece and 5 MB text part ({hits:,} hits, {found} findings): "
          f"{seconds:.2f} s (target < {TARGET_S:.0f} s)")
    print(f"growth 1 MB -> 4 MB: x{sizes[4] / sizes[1]:.1f} (linear: x4)")
    return 0 if seconds < TARGET_S else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
