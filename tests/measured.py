"""Running the CLI in a child process whose peak memory is measured and capped (tests of hostile
inputs)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: runs the CLI and reports the process's peak memory (VmHWM: this process's own, unlike
#: ru_maxrss, which keeps the forking parent's) on stderr when it exits
MEASURED = ("import atexit, sys\n"
            "def peak():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM:'):\n"
            "            sys.stderr.write('PEAK-KB %s\\n' % line.split()[1])\n"
            "atexit.register(peak)\n"
            "from newsletter.cli import main; main()")


def _two_gigabytes() -> None:
    """A regression must not take the machine down: the child may map at most 2 GB."""
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


def measured_cli(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`newsletter -C root ARGS` in a child capped at 2 GB: (result, peak MB; inf when the
    child died before reporting)."""
    done = subprocess.run([sys.executable, "-c", MEASURED, "-C", str(root), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          preexec_fn=_two_gigabytes)
    found = done.stderr.rsplit("PEAK-KB ", 1)
    return done, (int(found[1].split()[0]) / 1024 if len(found) == 2 else float("inf"))
