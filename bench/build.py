"""Build benchmark: cold whole-process `newsletter build` and in-process rebuild of the sample.

Targets (medians): cold build <= 1.0 s (issue 2) and <= 0.75x the MJML command-line compiler
compiling the same issue's MJML in the same run (issue 17); rebuild <= 20 ms (issue 17, the
preview's rebuild after an edit). Issue 13 adds the sample with two fresh 4000 x 3000 camera
photos (the hero and one in a piece): a cold build that processes them (printed, no target), and
the rebuild with the images cached (target <= 40 ms).

The MJML CLI (npm `mjml`, version MJML_VERSION) is installed by this script with npm into
.newsletter/cache/bench/ (reused when present); without npm that comparison is skipped with a
message. Cold builds and CLI runs alternate, so both see the same machine load; the CPU time
(user + system) of each child process is printed beside the wall-clock figures, with the load
average before and after (on a shared machine the CPU time is the steadier figure). Cold builds
after the first read what the first left in .newsletter/cache/ (processed images, compiled
templates, parsed CSS, validated settings, rendered pieces), as a `newsletter build` that
follows another does; cold builds with that folder emptied first are printed too.

The child processes run with Python's bytecode cache on (PYTHONDONTWRITEBYTECODE removed from
their environment), as an installed `newsletter` has it: pip compiles a package's modules when
it installs it. With the variable set (as in some shells), every run compiles newsletter's own
modules again (about 30 ms more per cold build). Prints figures; exits 1 if a target is missed.
"""

from __future__ import annotations

import os
import resource
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
PHOTO_COLD_RUNS = 3
EMPTY_CACHE_RUNS = 3  # cold builds with .newsletter/cache/ emptied first (printed, no target)
MJML_VERSION = "4.18.0"  # the latest 4.x: the MJML version mjml-python (MRML) follows
MJML_DIR = ROOT / ".newsletter" / "cache" / "bench" / f"mjml-{MJML_VERSION}"
COLD_TARGET, RATIO_TARGET, REBUILD_TARGET, PHOTO_REBUILD_TARGET = 1.0, 0.75, 20, 40


def copy_sample(dest: Path) -> Path:
    root = dest / "pub"
    shutil.copytree(ROOT / "issues", root / "issues")
    shutil.copy(ROOT / "newsletter.yaml", root / "newsletter.yaml")
    return root


def add_photos(root: Path) -> None:
    """Two 4000 x 3000 camera JPEGs: the hero, and one at the end of the energy piece."""
    from PIL import Image, ImageFilter

    folder = root / "issues" / SLUG
    for name in ("photo-hero.jpg", "photo-piece.jpg"):
        bands = [Image.effect_noise((4000, 3000), 50) for _ in range(3)]
        photo = Image.merge("RGB", bands).filter(ImageFilter.GaussianBlur(2))
        photo.save(folder / name, quality=92)
    manifest = folder / "issue.yaml"
    manifest.write_text(manifest.read_text().replace("image: hero.jpg", "image: photo-hero.jpg"))
    piece = folder / "pieces" / "energy.md"
    piece.write_text(piece.read_text() + '\n![A substation](photo-piece.jpg "A substation.")\n')


def mjml_cli() -> Path | str:
    """The MJML CLI's executable, installed with npm on first use; or why there is none."""
    executable = MJML_DIR / "node_modules" / ".bin" / "mjml"
    if executable.exists():
        return executable
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found"
    MJML_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(MJML_DIR), "--no-audit", "--no-fund", "--no-save",
         "--loglevel=error", f"mjml@{MJML_VERSION}"],
        capture_output=True, text=True,
    )
    if done.returncode != 0 or not executable.exists():
        return f"npm install mjml@{MJML_VERSION} failed: {done.stderr.strip()[-300:]}"
    return executable


def issue_mjml(root: Path, folder: Path) -> Path:
    """The MJML the build compiles for the issue's email, written to a file for the CLI."""
    from newsletter.compose.pipeline import process_images
    from newsletter.compose.publication import Publication
    from newsletter.compose.render import render
    from newsletter.compose.source import load_issue

    pub = Publication.load(root)
    issue = load_issue(pub, pub.issue_dir(SLUG))
    email, _ = render(pub, issue, images=process_images(pub, issue))
    path = folder / f"{SLUG}.mjml"
    path.write_text(email.mjml, encoding="utf-8")
    return path


CHILD_CPU: dict[str, list[float]] = {}  # CPU time (user + system) of each timed process, by label
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], label: str = "") -> float:
    """Wall-clock time of running `command`; its CPU time goes to CHILD_CPU[label]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=CHILD_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CHILD_CPU.setdefault(label, []).append(
        after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def cold(root: Path, runs: int = COLD_RUNS, fresh_images: bool = False,
         mjml: list[str] | None = None, mjml_times: list[float] | None = None) -> list[float]:
    """Times of whole `newsletter build` processes; with `mjml`, a CLI run after each, timed
    into `mjml_times`."""
    command = [sys.executable, "-m", "newsletter", "-C", str(root), "build", SLUG]
    times = []
    for _ in range(runs):
        if fresh_images:  # nothing cached: every image (and template, and CSS) processed again
            shutil.rmtree(root / ".newsletter" / "cache", ignore_errors=True)
        times.append(timed(command, "photos" if fresh_images else "build"))
        if mjml is not None and mjml_times is not None:
            mjml_times.append(timed(mjml, "mjml"))
    return times


CPU: dict[str, list[float]] = {}  # process CPU time of each rebuild, by bench label


def rebuild(root: Path, label: str = "sample") -> list[float]:
    """Wall-clock times of in-process rebuilds; their CPU times go to CPU[label] (on a busy
    shared machine the CPU time is the steadier figure)."""
    from newsletter.compose import build_issue, write_build
    from newsletter.compose.publication import Publication

    piece = root / "issues" / SLUG / "pieces" / "energy.md"
    original = piece.read_text()
    times, cpu = [], CPU.setdefault(label, [])
    for run in range(WARM_RUNS + 1):
        piece.write_text(original + f"\nEdit number {run}.\n")  # what an editor does
        start, start_cpu = time.perf_counter(), time.process_time()
        pub = Publication.load(root)
        write_build(pub, build_issue(pub, SLUG))
        if run:  # the first run warms imports and caches
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return times


def main() -> int:
    cli = mjml_cli()
    mjml_times: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp))
        mjml_command = None
        if isinstance(cli, Path):
            source = issue_mjml(root, Path(tmp))
            mjml_command = [str(cli), str(source), "-o", str(Path(tmp) / "mjml-cli.html")]
            timed(mjml_command)  # the first run reads node's modules from disk
        cold(root, 1)  # the first build fills .newsletter/cache/ (and writes bytecode)
        CHILD_CPU.clear()
        cold_times = cold(root, mjml=mjml_command, mjml_times=mjml_times)
        empty_times = cold(root, EMPTY_CACHE_RUNS, fresh_images=True)
        CHILD_CPU.pop("photos", None)
        warm_times = rebuild(root)
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp))
        add_photos(root)
        photo_cold = cold(root, PHOTO_COLD_RUNS, fresh_images=True)
        photo_warm = rebuild(root, "photos")
        sizes = {p.name: p.stat().st_size for p in (root / "issues" / SLUG).glob("photo-*")}
        built = {p.name: p.stat().st_size for p in (root / "dist" / SLUG).glob("photo-*")}
    load_after = os.getloadavg()
    print("load average (1, 5, 15 min) before: " + ", ".join(f"{x:.2f}" for x in load_before)
          + "; after: " + ", ".join(f"{x:.2f}" for x in load_after)
          + f" ({os.cpu_count()} CPUs)")
    cold_median = statistics.median(cold_times)
    warm_median = statistics.median(warm_times) * 1000
    photo_cold_median = statistics.median(photo_cold)
    photo_warm_median = statistics.median(photo_warm) * 1000
    print(f"cold build (whole process), median of {COLD_RUNS}: {cold_median:.3f} s "
          f"(min {min(cold_times):.3f}, max {max(cold_times):.3f}; target <= {COLD_TARGET} s)")
    print(f"cold build with .newsletter/cache/ emptied first (images, compiled templates, parsed "
          f"CSS), median of {EMPTY_CACHE_RUNS}: {statistics.median(empty_times):.3f} s "
          f"(min {min(empty_times):.3f}, max {max(empty_times):.3f})")
    ratio_ok = True
    if mjml_times:
        mjml_median = statistics.median(mjml_times)
        ratio = cold_median / mjml_median
        ratio_ok = ratio <= RATIO_TARGET
        print(f"MJML CLI {MJML_VERSION} (node) on the same issue's MJML, median of {COLD_RUNS}: "
              f"{mjml_median:.3f} s (min {min(mjml_times):.3f}, max {max(mjml_times):.3f})")
        print(f"cold build / MJML CLI: {ratio:.2f}x (target <= {RATIO_TARGET}x)")
        build_cpu, mjml_cpu = (statistics.median(CHILD_CPU[k]) for k in ("build", "mjml"))
        print(f"  CPU time (user + system), medians: cold build {build_cpu:.3f} s "
              f"(min {min(CHILD_CPU['build']):.3f}), MJML CLI {mjml_cpu:.3f} s "
              f"(min {min(CHILD_CPU['mjml']):.3f}): {build_cpu / mjml_cpu:.2f}x")
    else:
        print(f"MJML CLI comparison skipped: {cli}")
    print(f"in-process rebuild, median of {WARM_RUNS}: {warm_median:.1f} ms "
          f"(min {min(warm_times) * 1000:.1f}, max {max(warm_times) * 1000:.1f}; "
          f"target <= {REBUILD_TARGET} ms)")
    print(f"cold build with two fresh 4000 px photos, median of {PHOTO_COLD_RUNS}: "
          f"{photo_cold_median:.3f} s (min {min(photo_cold):.3f}, max {max(photo_cold):.3f})")
    print(f"in-process rebuild with the photos cached, median of {WARM_RUNS}: "
          f"{photo_warm_median:.1f} ms (min {min(photo_warm) * 1000:.1f}, "
          f"max {max(photo_warm) * 1000:.1f}; target <= {PHOTO_REBUILD_TARGET} ms)")
    for label, cpu in CPU.items():
        print(f"  CPU time of the {label} rebuild, median: "
              f"{statistics.median(cpu) * 1000:.1f} ms (min {min(cpu) * 1000:.1f})")
    print("photos: " + ", ".join(f"{n} {b / 1024:.0f} KB" for n, b in sorted(sizes.items()))
          + " -> " + ", ".join(f"{n} {b / 1024:.0f} KB" for n, b in sorted(built.items())))
    ok = (cold_median <= COLD_TARGET and ratio_ok and warm_median <= REBUILD_TARGET
          and photo_warm_median <= PHOTO_REBUILD_TARGET)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
