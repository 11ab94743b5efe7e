"""Hostile inputs: time and peak memory of refusing each one, every case in a fresh process.

    python bench/hostile.py

Cases: a 9x9 YAML alias bomb and 100,000-deep nesting (core.yamlsrc), a 20,000 x 20,000 PNG of a
few kilobytes and a 12,000 x 12,000 one (compose.images), and a 20 MB webhook body of `{}` items
(providers.sendgrid.webhook.decode_events, beside json.loads of the same body, which is what
the webhook did before). Prints one line per case: what happened, seconds, and the process's
peak RSS before the case ran (imports and the input itself) and after.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import sys, time
sys.path.insert(0, {root!r})
{imports}
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def report(label, run):
    ready = hwm()
    started = time.perf_counter()
    try:
        run()
        outcome = "accepted"
    except Exception as exc:
        outcome = type(exc).__name__
    seconds = time.perf_counter() - started
    peak = hwm()
    print(f"{{label:<48}} {{outcome:<14}} {{seconds:7.3f}} s  peak {{ready:5.0f}} -> "
          f"{{peak:5.0f}} MB")
"""

CASES = {
    "baseline (imports only)": ("import yaml, json, PIL.Image", "lambda: None"),
    "YAML 9x9 alias bomb (parse_yaml)": (
        "from newsletter.core.yamlsrc import parse_yaml\nfrom pathlib import Path\n"
        "text = 'l0: &l0 [' + ', '.join(['lol'] * 9) + ']\\n' + ''.join("
        "f'l{{n}}: &l{{n}} [' + ', '.join([f'*l{{n - 1}}'] * 9) + ']\\n' for n in range(1, 9))",
        "lambda: parse_yaml(text, Path('segments.yaml'))"),
    "YAML nested 100,000 deep (parse_yaml)": (
        "from newsletter.core.yamlsrc import parse_yaml\nfrom pathlib import Path\n"
        "text = 'x: ' + '[' * 100_000 + ']' * 100_000",
        "lambda: parse_yaml(text, Path('segments.yaml'))"),
    "PNG 20,000 x 20,000 (images.process)": (
        "from newsletter.compose import images\nfrom pathlib import Path", "lambda: images.process("
        "Path({png20!r}), 552, Path({tmp!r}))"),
    "PNG 12,000 x 12,000 (images.process)": (
        "from newsletter.compose import images\nfrom pathlib import Path", "lambda: images.process("
        "Path({png12!r}), 552, Path({tmp!r}))"),
    "webhook 20 MB of {{}} items (decode_events)": (
        "from newsletter.providers.sendgrid.webhook import decode_events\n"
        "body = b'[' + b'{{}},' * (20 * 2**20 // 3 - 1) + b'{{}}]'",
        "lambda: decode_events(body)"),
    "webhook 20 MB of {{}} items (json.loads: before)": (
        "import json\nbody = b'[' + b'{{}},' * (20 * 2**20 // 3 - 1) + b'{{}}]'",
        "lambda: json.loads(body)"),
}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.compose.test_image_limits import blank_png

    with tempfile.TemporaryDirectory() as tmp:
        png20 = blank_png(Path(tmp) / "bomb.png", 20_000, 20_000)
        png12 = blank_png(Path(tmp) / "warned.png", 12_000, 12_000)
        print(f"PNG files: {png20.stat().st_size / 1024:.0f} KB and "
              f"{png12.stat().st_size / 1024:.0f} KB")
        for label, (imports, run) in CASES.items():
            values = {"root": str(ROOT), "png20": str(png20), "png12": str(png12), "tmp": tmp}
            code = (PRELUDE.format(root=str(ROOT), imports=imports.format(**values))
                    + f"report({label.format()!r}, {run.format(**values)})\n")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  cwd=ROOT)
            print(done.stdout.strip() or done.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
