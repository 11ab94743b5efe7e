"""SpamAssassin for the test suite: the real one, run once per distinct message per worker.

Every `newsletter send`, dry run and send-test passes the check gate, which scores the sample
message with `spamassassin -L -t` (about 1.4 s of CPU for Perl to load its rules). Most tests
send the same sample issue again and again, so the suite's CPU went largely to scoring identical
bytes. `install()` puts a `spamassassin` command first on PATH for the session (in-process
checks and spawned `newsletter` processes alike): for input it has not seen (same arguments,
same bytes) it runs the real SpamAssassin and stores its output and exit status; for input it
has seen it replays them. What a test gets is exactly what SpamAssassin answered for those
bytes; nothing is scored by anything else. Without a real SpamAssassin nothing is installed (a
test that needs it skips, or fails under CI, as before), and a test that takes SpamAssassin off
PATH still finds none.

Run as a script, this module is that command (stdlib only, started with -IS).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE_VARIABLE = "NEWSLETTER_TEST_SPAM_CACHE"


def install(folder: Path) -> bool:
    """Write the command into `folder` and put it first on PATH; False without SpamAssassin."""
    real = shutil.which("spamassassin")
    if real is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    command = folder / "spamassassin"
    command.write_text(f"#!{sys.executable} -IS\n" + Path(__file__).read_text(encoding="utf-8"),
                       encoding="utf-8")
    command.chmod(0o755)
    (folder / "cache").mkdir(exist_ok=True)
    os.environ[CACHE_VARIABLE] = str(folder / "cache")
    os.environ["PATH"] = os.pathsep.join([str(folder), os.environ.get("PATH", "")])
    return True


def _real_command(here: str) -> str | None:
    """The first `spamassassin` on PATH that is not this command."""
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and os.path.realpath(p) != here]
    return shutil.which("spamassassin", path=os.pathsep.join(rest))


def main() -> int:
    here = os.path.realpath(os.path.dirname(os.path.abspath(sys.argv[0])))
    real = _real_command(here)
    if real is None:
        sys.stderr.write("spamassassin: not found\n")
        return 127
    data = sys.stdin.buffer.read()
    key = hashlib.sha256("\0".join(sys.argv[1:]).encode() + b"\0\0" + data).hexdigest()
    cache = Path(os.environ.get(CACHE_VARIABLE) or os.path.join(here, "cache"))
    stored = cache / key
    if not stored.is_dir():
        run = subprocess.run([real, *sys.argv[1:]], input=data, capture_output=True)
        if run.returncode != 0:  # replay answers only; a failure is never remembered
            sys.stdout.buffer.write(run.stdout)
            sys.stderr.buffer.write(run.stderr)
            return run.returncode
        fresh = Path(tempfile.mkdtemp(dir=cache, prefix=".new-"))
        (fresh / "stdout").write_bytes(run.stdout)
        (fresh / "stderr").write_bytes(run.stderr)
        try:
            fresh.rename(stored)  # atomic: another process may have stored it meanwhile
        except OSError:
            shutil.rmtree(fresh, ignore_errors=True)
        sys.stdout.buffer.write(run.stdout)
        sys.stderr.buffer.write(run.stderr)
        return 0
    sys.stdout.buffer.write((stored / "stdout").read_bytes())
    sys.stderr.buffer.write((stored / "stderr").read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
