"""Throttles, concurrent mail and logs: sign-ups are throttled per IPv6 /64 (not per address,
which gives one line 2**64 tries); confirmation mails sent by several real processes at once
are all delivered; and no log line the public side writes holds an address."""

from __future__ import annotations

import ipaddress
import logging
import signal
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core import privacy
from tests.conftest import examples
from tests.web.public.conftest import Site, csrf_token
from tests.web.public.test_serve import _free_port, _spawn, _wait


def _client(app, ip: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(app, client=(ip, 40000), follow_redirects=False)


def _sign_up(app, ip: str, n: int) -> int:
    client = _client(app, ip)
    token = csrf_token(client.get("/subscribe").text)
    return client.post("/subscribe", data={"email": f"r{n}@example.com", "csrf": token}
                       ).status_code


def test_an_ipv6_network_is_throttled_by_its_64(site: Site) -> None:
    from newsletter.web.public import create_app

    app = create_app(site.pub, prune=False)
    network = "2001:db8:7:1"
    codes = [_sign_up(app, f"{network}::{n + 1:x}", n) for n in range(21)]
    assert codes == [200] * 20 + [429]  # 21 addresses of one /64: one limit
    assert _sign_up(app, f"{network}:8000::1", 100) == 429  # still the same /64
    assert _sign_up(app, "2001:db8:7:2::1", 101) == 200  # the next /64 has its own
    assert _sign_up(app, "::ffff:192.0.2.1", 102) == 200  # an IPv4 visitor behind IPv6
    assert _sign_up(app, "192.0.2.1", 103) == 200  # ...counted with the same IPv4 address
    app.state.public.engine.dispose()


@settings(max_examples=examples(100), deadline=None)
@given(st.ip_addresses())
def test_the_throttle_key_is_the_64_or_the_ipv4_address(address) -> None:
    """Against the `ipaddress` module as the reference."""
    throttle_key = privacy.throttle_key
    key = throttle_key(f" {address} ")
    mapped = address.ipv4_mapped if address.version == 6 else None
    if address.version == 6 and mapped is None:
        assert key == str(ipaddress.IPv6Network(f"{address}/64", strict=False))
        assert throttle_key(str(ipaddress.IPv6Network(key)[1])) == key
    else:
        assert key == str(mapped or address)


@pytest.mark.slow
def test_parallel_sign_ups_on_two_processes_all_get_their_mail(site: Site) -> None:
    """15 sign-ups at once, three rounds, spread over two real `serve` processes writing into
    one outbox folder: every confirmation is delivered, and their logs hold no address."""
    ports = [_free_port(), _free_port()]
    processes = [_spawn(site, "--port", str(p), "--log-level", "info") for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for process, base in zip(processes, bases, strict=True):
            _wait(f"{base}/healthz", process)
        for round_ in range(3):
            ip = f"198.51.100.{round_ + 1}"
            with httpx.Client() as browser:
                token = csrf_token(browser.get(f"{bases[0]}/subscribe").text)
                cookies = dict(browser.cookies)

            def one(n: int, ip: str = ip, token: str = token, round_: int = round_,
                    cookies: dict = cookies) -> int:
                return httpx.post(f"{bases[n % 2]}/subscribe", cookies=cookies,
                                  data={"email": f"p{round_}-{n}@example.com", "csrf": token},
                                  headers={"X-Forwarded-For": ip}, timeout=60).status_code

            with ThreadPoolExecutor(15) as pool:
                assert list(pool.map(one, range(15))) == [200] * 15
            wanted = {f"p{round_}-{n}@example.com" for n in range(15)}
            deadline = time.monotonic() + 30  # mails go out after each answer
            while not wanted <= (got := {m["To"] for m in site.messages()}) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert wanted <= got, (round_, sorted(wanted - got))
        assert len(site.messages()) == 45
        assert not list(site.outbox.rglob("*.tmp"))
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
    logs = "".join(p.communicate(timeout=30)[1] for p in processes)
    assert "POST /subscribe" in logs  # the access log ran
    assert "@example" not in logs and "%40" not in logs


def test_the_suite_wide_log_guard_notices_an_address(log_guard) -> None:
    """tests/conftest.py fails any test whose log lines hold an address; shown one on purpose
    (even at debug level, even in a traceback), it must notice."""
    from tests.conftest import addresses_in

    logging.getLogger("newsletter.public").debug("would leak %s", "x@example.org")
    try:
        raise ValueError("y%40example.com")
    except ValueError:
        logging.getLogger("sqlalchemy").exception("failed")
    assert [line.split("\n")[0] for line in addresses_in(log_guard.records)] == [
        "would leak x@example.org", "failed"]
    log_guard.records.clear()


def test_serve_redacts_addresses_from_every_handler() -> None:
    """Whatever a library logs (an exception text, a traceback) leaves `serve` without the
    addresses in it."""
    import io

    from newsletter.web.site import RedactAddresses, log_config

    config = log_config("info")
    assert config["handlers"] and all(h.get("filters") == ["redact"]
                                      for h in config["handlers"].values())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactAddresses())
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("rejected %s and O'Brien+x@sub.example.org", "A.B@EXAMPLE.COM")
        try:
            raise RuntimeError("DETAIL: Key (email_key)=(c%40example.net) already exists")
        except RuntimeError:
            log.exception("insert failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "rejected [address] and [address]" in text and "insert failed" in text
    assert "Key (email_key)=([address])" in text and "example" not in text.lower()


def test_only_a_gone_writers_temporary_files_are_cleaned_up(tmp_path) -> None:
    """A live writer's temporary file is never deleted by another writer; a killed writer's
    is, at the next writer's start (and anything over an hour old)."""
    import os
    import subprocess
    import sys

    from newsletter.providers import outbox

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    live = tmp_path / f".{os.getpid()}-abc{outbox.TEMP_SUFFIX}"
    dead = tmp_path / f".{gone}-def{outbox.TEMP_SUFFIX}"
    old = tmp_path / f".{os.getpid()}-old{outbox.TEMP_SUFFIX}"
    for path in (live, dead, old):
        path.write_bytes(b"partial")
    stamp = time.time() - outbox.STALE_TEMP_S - 60
    os.utime(old, (stamp, stamp))
    outbox._remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]
