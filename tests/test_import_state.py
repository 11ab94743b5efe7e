"""Importing newsletter changes nothing outside it: every module, imported in a fresh
interpreter, leaves the environment, the libraries' loggers, warning filters and cssutils'
validation profiles as they were, and puts no stand-in module in place of a real one.

What a process needs configured is one explicit call at its start (`newsletter.cli`), never a
side effect of an import: a program or a test that imports the build keeps its own settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_layers import all_modules

#: Loaded before the baseline although no module imports it at the top: its state is checked.
ALSO_LOADED = ("cssutils",)

PROBE = r'''
import importlib, json, logging, os, socket, sys, types, warnings

def loggers():
    found = {"(root)": logging.getLogger()}
    found.update((name, logger) for name, logger in logging.Logger.manager.loggerDict.items()
                 if isinstance(logger, logging.Logger) and name.split(".")[0] != "newsletter")
    return {name: [logger.level, logger.disabled, logger.propagate, len(logger.handlers),
                   len(logger.filters)] for name, logger in found.items()}

def stand_ins():
    """Modules other modules hold that are not the ones sys.modules has under their name."""
    found = []
    for holder, module in list(sys.modules.items()):
        for value in list(vars(module).values()) if module is not None else ():
            if not isinstance(value, types.ModuleType):
                continue
            name = getattr(value, "__name__", None)
            real = sys.modules.get(name)
            if real is not None and real is not value or real is None and (
                    getattr(value, "__spec__", None) is None
                    and getattr(value, "__file__", None) is None):
                found.append(f"{holder} holds a stand-in {name}")
    return sorted(set(found))

def profiles():
    cssutils = sys.modules.get("cssutils")
    if cssutils is None:
        return None
    return sorted(cssutils.profile.knownNames), list(cssutils.profile.profiles)

def state():
    return {"environ": dict(os.environ), "loggers": loggers(), "stand-ins": stand_ins(),
            "warnings": [repr(f) for f in warnings.filters], "cssutils": profiles(),
            "socket timeout": socket.getdefaulttimeout(),
            "recursion limit": sys.getrecursionlimit()}

modules, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = state()
changed = {}
for name in modules:
    importlib.import_module(name)
    after = state()
    for key in before:
        if after[key] != before[key]:
            changed.setdefault(name, []).append(key)
    before = after
loaded = [m for m in sys.modules if m.split(".")[0] != "newsletter"]
print(json.dumps({"changed": changed, "loaded": loaded, "baseline": before}))
'''


def probe(modules: list[str], preload: list[str], path: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)} if path else None
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(modules),
                           json.dumps(preload)], capture_output=True, text=True, check=True,
                          env=env, cwd=ROOT, timeout=300)
    return json.loads(done.stdout)


#: What the inline stage's modules did on import until issue 28, one module each.
SIDE_EFFECTS = {
    "sets_environ": 'import os\nos.environ.setdefault("PREMAILER_CACHE_MAXSIZE", "4096")\n',
    "quiets_a_library": 'import logging\nlogging.getLogger("CSSUTILS").setLevel(50)\n',
    "holds_a_stand_in": ("import sys, types\n"
                         'sys.modules["tomllib"] = types.ModuleType("tomllib")\n'
                         "import tomllib as loaded_without_it\n"
                         'del sys.modules["tomllib"]\n'),
    "empties_profiles": "import cssutils\ncssutils.profile.removeProfile(all=True)\n",
}


def test_the_probe_sees_each_kind_of_change(tmp_path: Path) -> None:
    for name, source in SIDE_EFFECTS.items():
        (tmp_path / f"{name}.py").write_text(source)
    result = probe(list(SIDE_EFFECTS), ["cssutils"], tmp_path)
    assert result["changed"] == {"sets_environ": ["environ"], "quiets_a_library": ["loggers"],
                                 "holds_a_stand_in": ["stand-ins"],
                                 "empties_profiles": ["cssutils"]}


@pytest.mark.slow
def test_importing_any_module_changes_no_process_wide_state() -> None:
    modules = [name for name in all_modules() if name != "newsletter.__main__"]
    # Which libraries newsletter's modules load: imported first next time, so that what they
    # set up about themselves on import is part of the baseline, not charged to newsletter.
    libraries = probe(modules, [])["loaded"]
    result = probe(modules, [*libraries, *ALSO_LOADED])
    assert result["baseline"]["cssutils"] is not None  # the profiles were there to compare
    assert "premailer" not in libraries and "requests" not in libraries
    assert result["changed"] == {}
