"""Two `serve` processes on one database refuse a replayed Mailgun token between them."""

from __future__ import annotations

import json
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.db.tables import webhook_events, webhook_tokens
from newsletter.providers.mailgun.webhook import signature_of
from tests.web.public.conftest import Site
from tests.web.public.test_serve import _free_port, _spawn, _wait

KEY = "key-mailgun-signing-key"
TOKENS, COPIES = 8, 6  # each token posted this many times at once, half to each server


@pytest.mark.slow
def test_two_serve_processes_agree_on_replayed_tokens(site: Site) -> None:
    env = {**site.env, "MAILGUN_WEBHOOK_SIGNING_KEY": KEY}
    site.add("r@example.org")
    ports = [_free_port(), _free_port()]
    servers = [_spawn(site, "--port", str(port), env=env) for port in ports]
    try:
        for port, server in zip(ports, servers, strict=True):
            _wait(f"http://127.0.0.1:{port}/healthz", server)

        def post(job: tuple[int, str, int]) -> int:
            port, token, stamp = job
            payload = {"signature": {"timestamp": str(stamp), "token": token,
                                     "signature": signature_of(KEY, str(stamp), token)},
                       "event-data": {"event": "opened", "id": f"open-{token[:8]}",
                                      "recipient": "r@example.org", "timestamp": stamp}}
            return httpx.post(f"http://127.0.0.1:{port}/webhooks/mailgun", timeout=30,
                              content=json.dumps(payload),
                              headers={"Content-Type": "application/json"}).status_code

        tokens = [secrets.token_hex(25) for _ in range(TOKENS)]
        stamp = int(time.time())
        jobs = [(ports[n % 2], token, stamp) for token in tokens for n in range(COPIES)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(post, jobs))
        for index in range(TOKENS):
            mine = answers[index * COPIES:(index + 1) * COPIES]
            assert sorted(mine) == [200] + [406] * (COPIES - 1), mine
    finally:
        for server in servers:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_tokens)).scalar() == TOKENS
        assert conn.execute(select(func.count()).select_from(webhook_events)).scalar() == TOKENS
