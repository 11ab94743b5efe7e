"""Build benchmark: cold whole-process `newsletter build` and in-process rebuild of the sample.

Targets (issue 2): cold build <= 1.0 s, rebuild <= 100 ms (medians). Issue 13 adds the sample with
two fresh 4000 x 3000 camera photos (the hero and one in a piece): a cold build that processes
them (printed, no target), and the rebuild with the images cached (target <= 40 ms). Prints
figures; exits 1 if a target is missed.
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
PHOTO_COLD_RUNS = 3


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


def cold(root: Path, runs: int = COLD_RUNS, fresh_images: bool = False) -> list[float]:
    command = [sys.executable, "-m", "newsletter", "-C", str(root), "build", SLUG]
    times = []
    for _ in range(runs):
        if fresh_images:  # nothing cached: every image is processed again
            shutil.rmtree(root / ".newsletter" / "cache", ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


CPU: dict[str, list[float]] = {}  # process CPU time of each rebuild, by bench label


def rebuild(root: Path, label: str = "sample") -> list[float]:
    """Wall-clock times of in-process rebuilds; their CPU times go to CPU[label] (on a busy
    shared machine the CPU time is the steadier figure)."""
    from newsletter.build import build_issue, write_build
    from newsletter.build.publication import Publication

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
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp))
        cold_times = cold(root)
        warm_times = rebuild(root)
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp))
        add_photos(root)
        photo_cold = cold(root, PHOTO_COLD_RUNS, fresh_images=True)
        photo_warm = rebuild(root, "photos")
        sizes = {p.name: p.stat().st_size for p in (root / "issues" / SLUG).glob("photo-*")}
        built = {p.name: p.stat().st_size for p in (root / "dist" / SLUG).glob("photo-*")}
    cold_median = statistics.median(cold_times)
    warm_median = statistics.median(warm_times) * 1000
    photo_cold_median = statistics.median(photo_cold)
    photo_warm_median = statistics.median(photo_warm) * 1000
    print(f"cold build (whole process), median of {COLD_RUNS}: {cold_median:.3f} s "
          f"(min {min(cold_times):.3f}, max {max(cold_times):.3f}; target <= 1.0 s)")
    print(f"in-process rebuild, median of {WARM_RUNS}: {warm_median:.1f} ms "
          f"(min {min(warm_times) * 1000:.1f}, max {max(warm_times) * 1000:.1f}; target <= 100 ms)")
    print(f"cold build with two fresh 4000 px photos, median of {PHOTO_COLD_RUNS}: "
          f"{photo_cold_median:.3f} s (min {min(photo_cold):.3f}, max {max(photo_cold):.3f})")
    print(f"in-process rebuild with the photos cached, median of {WARM_RUNS}: "
          f"{photo_warm_median:.1f} ms (min {min(photo_warm) * 1000:.1f}, "
          f"max {max(photo_warm) * 1000:.1f}; target <= 40 ms)")
    for label, cpu in CPU.items():
        print(f"  CPU time of the {label} rebuild, median: "
              f"{statistics.median(cpu) * 1000:.1f} ms (min {min(cpu) * 1000:.1f})")
    print("photos: " + ", ".join(f"{n} {b / 1024:.0f} KB" for n, b in sorted(sizes.items()))
          + " -> " + ", ".join(f"{n} {b / 1024:.0f} KB" for n, b in sorted(built.items())))
    ok = cold_median <= 1.0 and warm_median <= 100 and photo_warm_median <= 40
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
