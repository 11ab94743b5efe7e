"""Once per person per issue, across sends and segments: later sends leave out whoever
already received the issue (unless --again), and several --segment options send once to their
union."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.dispatch.conftest import SLUG, Pub, add_people

TO = re.compile(rb"^To: .*?<?([^<>\s]+@[^<>\s]+)>?\r$", re.M)


def _mailed(outbox: Path) -> Counter[str]:
    return Counter(TO.search(p.read_bytes()).group(1).decode()
                   for p in outbox.glob(f"{SLUG}/*/*.eml"))


def _people(pub: Pub) -> tuple[list[str], list[str], list[str]]:
    cyber = add_people(pub.engine, 3, start=0, tags=("cyber",))
    energy = add_people(pub.engine, 3, start=10, tags=("energy",))
    both = add_people(pub.engine, 3, start=20, tags=("tech", "energy"))
    return cyber, energy, both


@pytest.mark.slow
def test_a_later_send_to_another_segment_leaves_out_who_received_it(pub: Pub) -> None:
    cyber, energy, both = _people(pub)
    first = pub.cli("send", SLUG, "--segment", "cyber", "--yes")
    assert first.exit_code == 0, first.output
    second = pub.cli("send", SLUG, "--segment", "energy", "--yes")
    assert second.exit_code == 0, second.output
    assert re.search(r"Recipients:\s+3\b", second.output)
    assert re.search(r"Left out:\s+3 already received this issue", second.output)
    assert _mailed(pub.outbox) == Counter(cyber + energy + both)  # each once
    again = pub.cli("send", SLUG, "--segment", "energy", "--again", "--yes")
    assert again.exit_code == 0, again.output
    assert _mailed(pub.outbox) == Counter(cyber + 2 * energy + 2 * both)


def test_several_segments_send_once_to_their_union(pub: Pub) -> None:
    cyber, energy, both = _people(pub)
    result = pub.cli("send", SLUG, "--segment", "cyber", "--segment", "energy", "--yes")
    assert result.exit_code == 0, result.output
    assert re.search(r"Segment:\s+cyber \+ energy", result.output)
    assert _mailed(pub.outbox) == Counter(cyber + energy + both)
    status = pub.cli("status", SLUG).output
    assert f"#1 {SLUG} -> cyber + energy via outbox: completed" in status
