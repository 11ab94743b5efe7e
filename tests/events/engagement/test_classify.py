"""The human-or-machine rules (newsletter.events.classify): one test per rule, plus the burst
rule against a plain brute-force reference (hypothesis)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.compose.schema import TrackingConfig
from newsletter.events.classify import (
    AGENT,
    BURST,
    PROVIDER,
    PROXY,
    TOO_SOON,
    Click,
    Thresholds,
    bursts,
    click_reason,
    open_reason,
    truncate_ip,
)

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
LIMITS = Thresholds(scanner_delay_s=10, burst_window_s=2, burst_links=3)


def test_open_marked_by_the_provider_is_a_machines() -> None:
    assert open_reason(CHROME, True) == PROVIDER
    assert open_reason(CHROME, False) is None and open_reason(CHROME, None) is None


def test_open_from_a_known_image_proxy_is_a_machines() -> None:
    assert open_reason("Mozilla/5.0", None) == PROXY  # Apple Mail Privacy Protection
    assert open_reason("Mozilla/5.0 (Windows NT 5.1) (via ggpht.com GoogleImageProxy)",
                       None) == PROXY
    assert open_reason("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy", None) == PROXY
    assert open_reason(CHROME, None) is None and open_reason(None, None) is None


def test_click_from_a_scanner_agent_is_a_machines() -> None:
    for agent in ("python-requests/2.31", "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
                  "Mimecast", "curl/8.4.0", "Mozilla/5.0 HeadlessChrome/119"):
        assert click_reason(5_000, agent, None, LIMITS) == AGENT, agent
    assert click_reason(5_000, CHROME, None, LIMITS) is None


def test_click_within_seconds_of_delivery_is_a_machines() -> None:
    delivered = 1_000
    assert click_reason(delivered + 10, CHROME, delivered, LIMITS) == TOO_SOON
    assert click_reason(delivered + 11, CHROME, delivered, LIMITS) is None
    assert click_reason(delivered + 3, CHROME, None, LIMITS) is None  # delivery unknown
    slower = Thresholds(scanner_delay_s=60, burst_window_s=2, burst_links=3)
    assert click_reason(delivered + 30, CHROME, delivered, slower) == TOO_SOON


def test_clicks_on_several_links_within_a_second_or_two_are_a_burst() -> None:
    scan = [Click("a", 100, 1), Click("b", 101, 2), Click("c", 102, 3), Click("d", 300, 4)]
    assert bursts(scan, LIMITS) == {"a", "b", "c"}
    # the same link clicked again quickly is a person double-clicking, not a burst
    assert bursts([Click("a", 100, 1), Click("b", 100, 1), Click("c", 101, 2)], LIMITS) == set()
    # a person reading link after link, seconds apart
    assert bursts([Click("a", 100, 1), Click("b", 103, 2), Click("c", 106, 3)], LIMITS) == set()
    assert BURST == "burst"


def test_thresholds_come_from_newsletter_yaml() -> None:
    config = TrackingConfig.model_validate({"clicks": True, "scanner_delay_s": 30,
                                            "burst_window_s": 1, "burst_links": 4})
    assert Thresholds.of(config) == Thresholds(30, 1, 4)
    assert Thresholds.of(TrackingConfig()) == Thresholds()


def test_ip_addresses_are_kept_as_their_network_only() -> None:
    assert truncate_ip("203.0.113.199") == "203.0.113.0/24"
    assert truncate_ip("2001:db8:abcd:12::7") == "2001:db8:abcd::/48"
    assert truncate_ip("not an ip") is None and truncate_ip(None) is None


def _reference_network(ip: str) -> str | None:
    """What `ipaddress` alone makes of an address (truncate_ip has a fast IPv4 path)."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


_OCTET = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "1000", "",
                                                                   " 1", "1 ", "+1", "\u0661",
                                                                   "0x1", "²"]))


@settings(max_examples=500)
@given(st.one_of(
    st.lists(_OCTET, min_size=3, max_size=5).map(".".join),
    st.ip_addresses().map(str),
    st.text(alphabet="0123456789.:abcdef ", max_size=20),
    st.text(max_size=12)))
def test_ip_truncation_matches_ipaddress(ip: str) -> None:
    assert truncate_ip(ip) == (_reference_network(ip) if ip else None)


def _reference(clicks: list[Click], limits: Thresholds) -> set[str]:
    """Brute force: a click is in a burst when some window of `burst_window_s` seconds that
    contains it holds clicks on at least `burst_links` different links."""
    found = set()
    for start in {c.at for c in clicks}:
        inside = [c for c in clicks if start <= c.at <= start + limits.burst_window_s]
        if len({c.position for c in inside}) >= limits.burst_links:
            found |= {c.key for c in inside}
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 5)), max_size=12),
       st.integers(0, 3), st.integers(2, 4))
def test_burst_rule_matches_a_brute_force_reference(raw, window, links) -> None:
    clicks = [Click(f"k{i}", at, position) for i, (at, position) in enumerate(raw)]
    limits = Thresholds(10, window, links)
    assert bursts(clicks, limits) == _reference(clicks, limits)
