"""What the `newsletter` process sets up for itself, it sets up by one call at its start:
glibc's malloc tuning is part of `configure_process()` (issue 28), and it works: threads then
share one malloc arena."""

from __future__ import annotations

import ast
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import newsletter
from tests.conftest import ROOT

#: Starts threads that allocate, then counts glibc's arenas (malloc_info's <heap> elements).
PROBE = r'''
import ctypes, sys, tempfile, threading
if sys.argv[1] == "configured":
    from newsletter.cli import configure_process
    configure_process()
kept = []
def allocate():
    kept.append([bytearray(50_000) for _ in range(20)])  # malloc'd by this thread
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(out.name).read().count("<heap nr="))
'''


def _arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True, cwd=ROOT, timeout=120)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_threads_share_one_malloc_arena_once_the_process_is_configured() -> None:
    assert _arenas("bare") > 1  # the probe sees arenas of their own
    assert _arenas("configured") == 1


def test_the_malloc_tuning_is_one_call_at_the_process_start() -> None:
    """Only the command line's `configure_process()` (called by `main`, before any command)
    names mallopt: no module tunes malloc from the middle of a send, or on import."""
    package = Path(newsletter.__file__).parent
    naming = [path.relative_to(package).as_posix() for path in sorted(package.rglob("*.py"))
              if "mallopt" in path.read_text(encoding="utf-8")]
    assert naming == ["cli/__init__.py"]
    tree = ast.parse((package / "cli" / "__init__.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}

    def calls(name: str) -> set[str]:
        return {node.func.id for node in ast.walk(functions[name])
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}

    assert "share_malloc_arenas" in calls("configure_process")
    assert "configure_process" in calls("main")
    callers = {name for name in functions if "share_malloc_arenas" in calls(name)}
    assert callers == {"configure_process"}
