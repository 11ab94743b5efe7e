"""Two server processes on one database, each SNS message posted to both at once, several times:
each message is applied exactly once and every other copy is answered as a replay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.db.tables import engagement, webhook_events, webhook_tokens
from tests.dispatch.conftest import ROOT
from tests.events.test_last_engaged import reference, stored
from tests.fake_sns import (  # noqa: F401  (fixtures)
    TOPIC,
    FakeSnsHost,
    Signer,
    body,
    headers,
    sns_host,
    sns_pki,
    sns_signer,
    sns_stand_in,
)
from tests.ses_records import record
from tests.web.public.conftest import Site
from tests.web.public.test_serve import _free_port
from tests.web.public.test_ses_webhook import sent

MESSAGES, COPIES = 6, 4  # each message posted this many times at once, half to each server
READERS = 4


def _serve(site: Site, port: int, host: FakeSnsHost) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sns_serve", str(site.root), str(port),
         str(host.pki.ca_file), str(host.port)],
        env={**os.environ, **site.env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    assert "READY" in line, (line, process.communicate(timeout=10))
    return process


@pytest.mark.slow
def test_two_processes_apply_each_sns_message_once(
        site: Site, sns_host: FakeSnsHost, sns_signer: Signer) -> None:  # noqa: F811
    host, signer = sns_host, sns_signer
    with open(site.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"ses: {{topic_arns: [{TOPIC}]}}\n")
    readers = [f"reader{n}@example.com" for n in range(READERS)]
    sent(site, *readers)  # send #1
    documents = [signer.notification(record("Open", readers[n % READERS]))
                 for n in range(MESSAGES)]
    ports = [_free_port(), _free_port()]
    servers = [_serve(site, port, host) for port in ports]
    try:
        def post(job: tuple[int, int]) -> tuple[int, bool]:
            port, index = job
            answer = httpx.post(f"http://127.0.0.1:{port}/webhooks/ses", timeout=60,
                                content=body(documents[index]),
                                headers=headers(documents[index]))
            return answer.status_code, bool(answer.json().get("replay"))

        jobs = [(ports[n % 2], index) for index in range(MESSAGES) for n in range(COPIES)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(post, jobs))
        for index in range(MESSAGES):
            mine = answers[index * COPIES:(index + 1) * COPIES]
            assert sorted(mine) == [(200, False)] + [(200, True)] * (COPIES - 1), mine
    finally:
        for server in servers:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_tokens)).scalar() == \
            MESSAGES
        assert conn.execute(select(func.count()).select_from(webhook_events)).scalar() == \
            MESSAGES
        assert conn.execute(select(func.sum(engagement.c.opens))).scalar() == MESSAGES
    expected = reference(site.engine)  # each reader's last human open, as the events say
    assert stored(site.engine) == expected and any(expected.values())
    assert host.requests.total() <= 2  # each process fetched the certificate once at most
