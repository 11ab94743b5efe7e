"""Benchmark `newsletter check` on the sample issue.

Targets (issue 6): the whole command with SpamAssassin in at most 3 s; the offline checks
without SpamAssassin in at most 300 ms (measured on the built issue, first run in a fresh process
and warm). The whole `check --no-spam` process is printed for information: most of it is Python
start-up and the build (premailer), which `newsletter build` pays too. Exits 1 if a target is
missed.
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
RUNS = 5
IN_PROCESS_RUNS = 20


def copy_sample(target: Path) -> Path:
    target.mkdir()
    shutil.copy(ROOT / "newsletter.yaml", target / "newsletter.yaml")
    shutil.copytree(ROOT / "issues", target / "issues")
    return target


def command(root: Path, *extra: str) -> list[float]:
    """Wall-clock seconds of `newsletter check` as a fresh process, RUNS times."""
    argv = [sys.executable, "-m", "newsletter", "-C", str(root), "check", SLUG, *extra]
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):
            sys.exit(f"check failed to run: {done.stderr or done.stdout}")
    return times


def in_process(root: Path) -> tuple[list[float], list[float]]:
    """Seconds for the offline checks alone, and for build + offline checks, in one process."""
    from newsletter.checks import run
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    pub = Publication.load(root)
    checks, both = [], []
    for _ in range(IN_PROCESS_RUNS):
        started = time.perf_counter()
        build = build_issue(pub, SLUG)
        built = time.perf_counter()
        run(pub, build, spam=False)
        done = time.perf_counter()
        checks.append(done - built)
        both.append(done - started)
    return checks, both


def line(label: str, times: list[float], target: float, unit: str = "s") -> bool:
    scale = 1000 if unit == "ms" else 1
    med = statistics.median(times)
    print(
        f"{label}: median {med * scale:.{0 if unit == 'ms' else 2}f} {unit} "
        f"(min {min(times) * scale:.{0 if unit == 'ms' else 2}f}, "
        f"max {max(times) * scale:.{0 if unit == 'ms' else 2}f}; target <= "
        f"{target * scale:.{0 if unit == 'ms' else 1}f} {unit})"
    )
    return med <= target


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp) / "pub")
        checks, both = in_process(root)
        ok = line("offline checks, first run in the process (cold)", checks[:1], 0.3, "ms")
        ok &= line(f"offline checks, warm, {IN_PROCESS_RUNS - 1} runs", checks[1:], 0.3, "ms")
        print(f"build + offline checks, warm: median {statistics.median(both[1:]) * 1000:.0f} ms")
        no_spam = command(root, "--no-spam")
        print(
            f"`check --no-spam` whole process (start-up + build + checks), {RUNS} runs: "
            f"median {statistics.median(no_spam):.2f} s (information, no target)"
        )
        if shutil.which("spamassassin"):
            ok &= line(f"`check` with SpamAssassin, whole process, {RUNS} runs", command(root), 3.0)
        else:
            print("SpamAssassin not installed: the 3 s figure was not measured")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
