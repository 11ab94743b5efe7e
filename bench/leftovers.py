"""Benchmark the leftover-placeholder check (TK, TODO, lorem ipsum, unrendered tags) on a hostile
5 MB piece.

Target (issue 23): a 5 MB piece, its text and HTML parts 5 MB too, checked in under a second.
The piece is about 290,000 hits ("lorem ipsum", TODOs inside and outside HTML comments, unclosed
`{{`) on long lines. The check before issue 23 looked up each hit's comment state by joining
every line before it, so its time grew with hits x size (200,000 hits took 298 s); the last
line compares it on a 200 KB piece. The check is also timed on 1, 2 and 4 MB: linear time
doubles with the size. Medians of RUNS runs. Exits 1 if the target is missed.
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
RUNS = 3
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
    and HTML parts hold it too. The issue is built small, then its piece, text part and HTML are
    swapped for the hostile ones; the HTML's parse and the sources' reading, which every check
    shares, happen before the clock starts."""
    import html

    from newsletter.checks.leftovers import check_leftovers
    from newsletter.checks.model import Context
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    pub = Publication.load(root)
    piece = root / "issues" / SLUG / "pieces" / "energy.md"
    piece.write_text((ROOT / "issues" / SLUG / "pieces" / "energy.md").read_text())
    build = build_issue(pub, SLUG)
    body = hostile(size)
    piece.write_text("---\ntitle: A\nexpert: elena-marsh\n---\n\n" + body, encoding="utf-8")
    build.text = body
    build.html = f"<!doctype html><html><body><p>{html.escape(body)}</p></body></html>"
    ctx = Context(pub, build)
    _ = ctx.doc, ctx.sources  # shared by every check: parsed and read once per run
    started = time.perf_counter()
    findings = check_leftovers(ctx)
    seconds = time.perf_counter() - started
    hits = body.lower().count("lorem ipsum") + body.count("TODO") + body.count("{{")
    return seconds, len(findings), hits


def before(lines: list[str]) -> float:
    """Seconds the check before issue 23 spent locating comments for every hit of `lines` (a
    piece): it joined every line before each hit, so its time grew with hits x size."""
    import re

    started = time.perf_counter()
    for number, line in enumerate(lines, start=1):
        for match in re.finditer(r"lorem ipsum|\bTODO\b", line, re.I):
            text = "\n".join(lines[: number - 1] + [line[: match.start()]])
            _ = text.rfind("<!--") > text.rfind("-->")
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> int:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pub"
        root.mkdir()
        shutil.copy(ROOT / "newsletter.yaml", root / "newsletter.yaml")
        shutil.copytree(ROOT / "issues", root / "issues")
        sizes = {mb: median([timed(root, mb * MB)[0] for _ in range(RUNS)]) for mb in (1, 2, 4)}
        runs = [timed(root, 5 * MB) for _ in range(RUNS)]
        seconds, found, hits = median([r[0] for r in runs]), runs[0][1], runs[0][2]
        small = hostile(200_000).splitlines()
        old = before(small)
        new = timed(root, 200_000)[0]
    print(f"load average {load:.2f}; medians of {RUNS} runs")
    for megabytes, taken in sizes.items():
        print(f"leftover check, {megabytes} MB piece and text part: {taken:.2f} s")
    print(f"leftover check, 5 MB piece and 5 MB text part ({hits:,} hits, {found} findings): "
          f"{seconds:.2f} s (target < {TARGET_S:.0f} s)")
    print(f"growth 1 MB -> 4 MB: x{sizes[4] / sizes[1]:.1f} (linear: x4)")
    print(f"200 KB piece: {new * 1000:.0f} ms; the check before issue 23 spent {old:.1f} s on "
          "locating comments alone")
    return 0 if seconds < TARGET_S else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
