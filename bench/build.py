"""Build benchmark: cold whole-process `newsletter build` and in-process rebuild of the sample.

Targets (issue 2): cold build <= 1.0 s, rebuild <= 100 ms (medians). Prints figures; exits 1 if a
target is missed.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2026-11-24"
COLD_RUNS = 7
WARM_RUNS = 30


def copy_sample(dest: Path) -> Path:
    root = dest / "pub"
    shutil.copytree(ROOT / "issues", root / "issues")
    shutil.copy(ROOT / "newsletter.yaml", root / "newsletter.yaml")
    return root


def cold(root: Path) -> list[float]:
    command = [sys.executable, "-m", "newsletter", "-C", str(root), "build", SLUG]
    times = []
    for _ in range(COLD_RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def rebuild(root: Path) -> list[float]:
    from newsletter.build import build_issue, write_build
    from newsletter.build.publication import Publication

    piece = root / "issues" / SLUG / "pieces" / "energy.md"
    original = piece.read_text()
    times = []
    for run in range(WARM_RUNS + 1):
        piece.write_text(original + f"\nEdit number {run}.\n")  # what an editor does
        start = time.perf_counter()
        pub = Publication.load(root)
        write_build(pub, build_issue(pub, SLUG))
        if run:  # the first run warms imports and caches
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp))
        cold_times = cold(root)
        warm_times = rebuild(root)
    cold_median = statistics.median(cold_times)
    warm_median = statistics.median(warm_times) * 1000
    print(f"cold build (whole process), median of {COLD_RUNS}: {cold_median:.3f} s "
          f"(min {min(cold_times):.3f}, max {max(cold_times):.3f}; target <= 1.0 s)")
    print(f"in-process rebuild, median of {WARM_RUNS}: {warm_median:.1f} ms "
          f"(min {min(warm_times) * 1000:.1f}, max {max(warm_times) * 1000:.1f}; target <= 100 ms)")
    return 0 if cold_median <= 1.0 and warm_median <= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
