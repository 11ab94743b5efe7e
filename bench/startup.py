"""Start-up benchmark: whole-process `newsletter --help` and `newsletter COMMAND --help`.

Target (issue 17): every measured help <= 0.12 s wall (median). Also prints the floor, a bare
`python -c pass`, and `python -c "import click"` (what the command line cannot go below without
leaving click), with each process's CPU time (user + system, the steadier figure on a shared
machine). Runs are interleaved, so a burst of load from elsewhere hits every line alike.
Exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.12
RUNS = 11
#: The helps measured by default: the group's, then a command from each area and subcommands.
DEFAULT_HELPS: list[list[str]] = [
    [], ["build"], ["check"], ["send"], ["send", "cancel"], ["status"], ["report"], ["preview"],
    ["serve"], ["subscribers"], ["subscribers", "import"], ["suppressions", "sync"],
]


def newsletter_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m newsletter`."""
    script = Path(sys.executable).with_name("newsletter")
    if script.exists():
        return [str(script)]
    found = shutil.which("newsletter")
    return [found] if found else [sys.executable, "-m", "newsletter"]


def every_help() -> list[list[str]]:
    """Every command and subcommand, walked from the click group (imports them all)."""
    import click

    from newsletter.cli import main

    ctx = click.Context(main, info_name="newsletter")
    found: list[list[str]] = [[]]
    for name in main.list_commands(ctx):
        found.append([name])
        command = main.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += [[name, sub] for sub in command.list_commands(ctx)]
    return found + [["send", "cancel"]]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each command")
    parser.add_argument("--all", action="store_true",
                        help="every command and subcommand, not only a sample of them")
    args = parser.parse_args()

    newsletter = newsletter_command()
    floors = {"python -c pass (floor)": [sys.executable, "-c", "pass"],
              'python -c "import click"': [sys.executable, "-c", "import click"]}
    helps = {" ".join(["newsletter", *words, "--help"]): [*newsletter, *words, "--help"]
             for words in (every_help() if args.all else DEFAULT_HELPS)}
    commands = {**floors, **helps}
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    for command in commands.values():  # warm the file cache once
        timed(command)
    for _ in range(args.runs):
        for label, command in commands.items():
            wall, cpu = timed(command)
            walls[label].append(wall)
            cpus[label].append(cpu)

    width = max(len(label) for label in commands)
    print(f"{'process':<{width}}  median wall (min)    median CPU   ({args.runs} runs each)")
    for label in commands:
        wall = statistics.median(walls[label])
        print(f"{label:<{width}}  {wall * 1000:6.0f} ms ({min(walls[label]) * 1000:4.0f})"
              f"    {statistics.median(cpus[label]) * 1000:6.0f} ms")
    worst = max(helps, key=lambda label: statistics.median(walls[label]))
    slowest = statistics.median(walls[worst])
    verdict = "ok" if slowest <= TARGET_S else "MISSED"
    print(f"slowest help: {worst}, {slowest * 1000:.0f} ms (target <= {TARGET_S * 1000:.0f} ms): "
          f"{verdict}")
    return 0 if slowest <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
