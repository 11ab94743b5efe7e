"""Amazon SES: 200,000 recipients through the local stand-in (tests.fake_ses) answering every
SendEmail after 300 ms, with the account's MaxSendRate obeyed.

The send is the real `python -m newsletter send --transport ses` in its own process, with the
real boto3 client, against the stand-in's proxy in this process: GetAccount and the first
SendEmail go to moto's server (its rules: a verified sender, the request's shape), the rest are
answered by the proxy after 300 ms and their recipients counted (`instant`), so exactly-once is
checked too. Figures: the send phase (the ledger's creation-to-completion time), recipients per
second over it, the most requests in flight at once, the most requests that arrived in any one
second and how many a bucket of MaxSendRate (one second's worth, SES's model in the stand-in)
would have refused, the sending process's CPU time per recipient and its peak RSS
(docs/performance.md, "Dispatch through SES").

SES limits messages per second, whatever the call: at 300 ms an answer, MaxSendRate messages a
second need about MaxSendRate x 0.3 requests in flight, which `ses.max_in_flight` caps (50 by
default: 166 messages a second at 300 ms). The bench raises it to fit the rate.

Each message costs the sending process CPU time of its own (its MIME, boto3's request and
signature, two ledger statements): beyond a few hundred messages a second per core the CPU,
not MaxSendRate, is the limit, so the rate reached depends on the machine and its load.

Targets: every address accepted exactly once; nothing over MaxSendRate (none refused by the
bucket); at most 6 ms of CPU a recipient.

    python bench/ses.py [--subscribers 200000] [--rate 1000] [--in-flight 400]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from bisect import bisect_left
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dispatch as base  # noqa: E402  (bench/dispatch.py: the publication, fill, send)

ROOT = base.ROOT
sys.path.insert(0, str(ROOT))
from tests.fake_ses import FakeSes  # noqa: E402

LATENCY_S = 0.3
MAX_CPU_MS = 6.0  # the sending process's CPU time per recipient


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals within any one second."""
    times = sorted(arrivals)
    return max((n - bisect_left(times, t - 1.0, 0, n) + 1 for n, t in enumerate(times)),
               default=0)


def would_throttle(arrivals: list[float], rate: float) -> int:
    """How many arrivals a bucket of one second's worth, refilled at `rate` a second, would
    have refused (the stand-in's model of SES's MaxSendRate, tests/fake_ses_server.py)."""
    capacity = max(1.0, rate)
    tokens, last, refused = capacity, None, 0
    for at in sorted(arrivals):
        if last is not None:
            tokens = min(capacity, tokens + (at - last) * rate)
        last = at
        if tokens < 1:
            refused += 1
        else:
            tokens -= 1
    return refused


def run(work: Path, count: int, rate: float, in_flight: int) -> dict[str, Any]:
    pub = base.publication(work / "ses")
    db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
    print(f"filling {count:,} subscribers ...", flush=True)
    base.fill(db, count)
    with FakeSes(light=True, instant=True) as fake:
        fake.reset(MaxSendRate=rate, enforce_rate=False)
        fake.delay = LATENCY_S
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": base.SECRET,
               "NEWSLETTER_DATABASE_URL": db, "NEWSLETTER_SES_IN_FLIGHT": str(in_flight),
               **fake.env}
        print(f"sending {count:,} through ses ({LATENCY_S * 1000:.0f} ms a request, "
              f"{rate:g}/s) ...", flush=True)
        wall, rss, cpu, _ = base.send(pub, env, "ses")
        counts = fake.recipients()
        arrivals = [at for _, at in fake.sends]
        peak = fake.peak
    phase = base.send_phase(db)
    return {"provider": "ses", "recipients": count, "max_send_rate": rate,
            "max_in_flight": in_flight, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "send_phase_s": round(phase, 1), "rate_per_s": round(count / phase),
            "requests": len(arrivals), "peak_in_flight": peak,
            "busiest_second": busiest_second(arrivals),
            "would_throttle": would_throttle(arrivals, rate), "peak_rss_mb": round(rss, 1),
            "cpu_ms_per_recipient": round(cpu * 1000 / count, 2),
            "exactly_once": len(counts) == count and set(counts.values()) == {1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="the account's MaxSendRate")
    parser.add_argument("--in-flight", type=int, default=400,
                        help="NEWSLETTER_SES_IN_FLIGHT (ses.max_in_flight)")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="nl-bench-ses-") as tmp:
        result = run(Path(tmp), args.subscribers, args.rate, args.in_flight)
    print(json.dumps(result), flush=True)
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    failed = []
    if not result["exactly_once"]:
        failed.append("not exactly once")
    if result["would_throttle"]:
        failed.append(f"{result['would_throttle']} requests over the account's "
                      f"{args.rate:g}/s")
    if result["cpu_ms_per_recipient"] > MAX_CPU_MS:
        failed.append(f"{result['cpu_ms_per_recipient']} ms of CPU a recipient, over "
                      f"{MAX_CPU_MS} ms")
    if failed:
        raise SystemExit("; ".join(failed))


if __name__ == "__main__":
    main()
