"""Postmark and Mailgun: 200,000 recipients each through its local fake answering every send
request after 300 ms, with SendGrid's figure beside them from the same run.

Each send is the real `python -m newsletter send` in its own process against the provider's
fake in another (`python -m tests.fake_postmark` / `tests.fake_mailgun` / `tests.fake_sendgrid`
with `--count-only --instant --delay 0.3`: the first request is checked by the provider's rules,
then addresses are only counted), so exactly-once is checked too. Figures: the send phase (the
ledger's creation-to-completion time), recipients per second over it, requests, the most in
flight at once, and the sending process's peak RSS (docs/performance.md, "Dispatch through
Postmark and Mailgun").

Targets: every address accepted exactly once; Mailgun at least 10,000 recipients/s (1,000
recipients a request, 4 in flight: 13,000/s is the ceiling at 300 ms); Postmark at least 1,000
recipients/s (whole messages, up to 500 a request and 20 MB: the sample issue fits 223, so its
ceiling at 300 ms and 4 in flight is about 3,000/s, and building 200,000 whole messages costs
CPU that the other two do not spend).

    python bench/providers.py [--subscribers 200000] [--only postmark|mailgun|sendgrid]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dispatch as base  # noqa: E402  (bench/dispatch.py: the publication, fill, send)

ROOT = base.ROOT
LATENCY_S = 0.3
MIN_RATE = {"mailgun": 10_000.0, "postmark": 1_000.0}
CREDENTIALS = {
    "postmark": {"POSTMARK_SERVER_TOKEN": "fake-postmark-server-token"},
    "mailgun": {"MAILGUN_API_KEY": "fake-mailgun-key", "MAILGUN_DOMAIN": "mg.example.org"},
    "sendgrid": {"SENDGRID_API_KEY": base.API_KEY},
}
URL_VARIABLE = {"postmark": "POSTMARK_API_URL", "mailgun": "MAILGUN_API_URL",
                "sendgrid": "SENDGRID_API_URL"}


class Fake:
    """A provider's fake in its own process."""

    def __init__(self, provider: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"tests.fake_{provider}", "--count-only", "--instant",
             "--delay", str(LATENCY_S)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline().split()[1])}"

    def stats(self) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/_fake/stats",  # SendGrid's wants its key
                                         headers={"Authorization": f"Bearer {base.API_KEY}"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    def __enter__(self) -> Fake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait()


def run(work: Path, provider: str, count: int) -> dict[str, Any]:
    pub = base.publication(work / provider)
    db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
    print(f"filling {count:,} subscribers ...", flush=True)
    base.fill(db, count)
    with Fake(provider) as fake:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": base.SECRET,
               "NEWSLETTER_DATABASE_URL": db, URL_VARIABLE[provider]: fake.url,
               **CREDENTIALS[provider]}
        print(f"sending {count:,} through {provider} (300 ms a request) ...", flush=True)
        wall, rss, cpu, _ = base.send(pub, env, provider)
        stats = fake.stats()
    phase = base.send_phase(db)
    return {"provider": provider, "recipients": count, "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "send_phase_s": round(phase, 1),
            "rate_per_s": round(count / phase), "requests": stats["requests"],
            "peak_in_flight": stats["peak"], "peak_rss_mb": round(rss, 1),
            "exactly_once": stats["unique"] == count and stats["duplicates"] == 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--only", choices=["postmark", "mailgun", "sendgrid"])
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
    results, failed = [], []
    with tempfile.TemporaryDirectory(prefix="nl-bench-providers-") as tmp:
        for provider in [args.only] if args.only else ["postmark", "mailgun", "sendgrid"]:
            result = run(Path(tmp), provider, args.subscribers)
            results.append(result)
            print(json.dumps(result), flush=True)
            if not result["exactly_once"]:
                failed.append(f"{provider}: not exactly once")
            if result["rate_per_s"] < MIN_RATE.get(provider, 0):
                failed.append(f"{provider}: {result['rate_per_s']:,}/s is under the target "
                              f"{MIN_RATE[provider]:,.0f}/s")
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    if failed:
        raise SystemExit("; ".join(failed))


if __name__ == "__main__":
    main()
