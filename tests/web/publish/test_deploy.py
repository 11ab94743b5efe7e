"""docs/deploy.md's systemd unit: systemd accepts it, and its ExecStart line runs the server."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from tests.web.publish.conftest import ROOT, Local

DOC = ROOT / "docs" / "deploy.md"
BIN = "/srv/newsletter/.venv/bin/newsletter"


def unit_text() -> str:
    """The ```ini block of docs/deploy.md that holds the unit."""
    blocks = re.findall(r"```ini\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    units = [b for b in blocks if "[Service]" in b]
    assert len(units) == 1, "docs/deploy.md should show exactly one systemd unit"
    return units[0]


def localised(unit: str, local: Local, env_file: Path) -> str:
    """The unit with the documented paths replaced by this test's."""
    newsletter = Path(sys.executable).with_name("newsletter")
    return (unit.replace(BIN, str(newsletter)).replace("/etc/newsletter/env", str(env_file))
            .replace("/srv/newsletter", str(local.root)))


def _parse(unit: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(unit)
    return parser


def test_the_unit_is_complete_and_systemd_accepts_it(local: Local, tmp_path: Path) -> None:
    unit = _parse(unit_text())
    service = unit["Service"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert service["ExecStart"].startswith(BIN + " ")
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    args = shlex.split(service["ExecStart"])
    graceful = int(args[args.index("--graceful-timeout") + 1])
    assert int(service["TimeoutStopSec"]) > graceful  # systemd waits for the graceful stop
    assert args[args.index("--host") + 1] == "127.0.0.1"  # only the proxy reaches it
    need("systemd-analyze", shutil.which("systemd-analyze") is not None)
    env_file = tmp_path / "env"
    env_file.write_text("")
    path = tmp_path / "newsletter.service"
    path.write_text(localised(unit_text(), local, env_file).replace("User=newsletter",
                    "User=root").replace("Group=newsletter", "Group=root"))
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "newsletter.service" not in result.stderr, result.stderr  # no warning about it


@pytest.mark.slow
def test_the_exec_start_line_serves_and_stops_cleanly(local: Local, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in local.env.items()))
    unit = _parse(localised(unit_text(), local, env_file))
    service = unit["Service"]
    args = shlex.split(service["ExecStart"])
    args[args.index("--port") + 1] = str(local.port)
    environment = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    process = subprocess.Popen(args, cwd=service["WorkingDirectory"], env={
        "PATH": "/usr/bin:/bin", **environment}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    local.servers.append(process)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()
        try:
            health = httpx.get(f"{local.direct}/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the unit's server did not start"
            time.sleep(0.2)
    assert health.status_code == 200 and health.json()["database"] == "ok"
    assert httpx.get(f"{local.direct}/").status_code == 200
    process.send_signal(getattr(signal, service["KillSignal"]))
    process.communicate(timeout=int(service["TimeoutStopSec"]))
    assert process.returncode == 0
