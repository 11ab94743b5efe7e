"""The provider contract (newsletter.providers.base): every transport fills the same fixed steps
and declares what it can do; the steps themselves keep their promises for any provider."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.personalise import Recipient
from newsletter.providers import TRANSPORTS, capabilities, transport_class
from newsletter.providers.base import (
    BatchResult,
    Outcome,
    OutcomeSink,
    Request,
    Transport,
)
from newsletter.providers.mailing import Item
from tests.conftest import examples

KNOWN_REPORTS = {"open", "click", "bounce", "complaint", "unsubscribe"}


def overrides(cls: type[Transport], name: str) -> bool:
    """Whether `cls` (or a class between it and Transport) defines `name` itself."""
    return next(c for c in cls.__mro__ if name in c.__dict__) is not Transport


@pytest.mark.parametrize("name", TRANSPORTS)
def test_each_transport_fills_what_it_declares(name: str) -> None:
    cls = transport_class(name)
    declared = cls.capabilities
    assert cls.name == name and cls.label and capabilities(name) is declared
    assert overrides(cls, "post")
    schedules = declared.scheduling is not None
    assert overrides(cls, "create_batch_id") == schedules == overrides(cls, "cancel")
    assert schedules or not overrides(cls, "undo_window")
    assert (not schedules) or not declared.unscheduled
    assert overrides(cls, "suppression_source") == declared.suppression_lists
    assert overrides(cls, "releaser") == declared.releases
    assert declared.suppression_lists or not declared.releases
    assert overrides(cls, "resolve_unknown") == bool(declared.settles_unknown)
    assert declared.reports <= KNOWN_REPORTS and declared.reports_by_mail <= KNOWN_REPORTS
    assert not declared.flags_machine_opens or "open" in declared.reports


def test_the_cli_offers_the_lists_the_providers_declare() -> None:
    """`suppressions sync --provider` keeps its own copy of the names (its help imports no
    provider): it must be exactly those that declare suppression lists."""
    from newsletter.cli.public import SUPPRESSION_LISTS

    assert set(SUPPRESSION_LISTS) == {n for n in TRANSPORTS if capabilities(n).suppression_lists}


def test_an_unknown_transport_declares_nothing() -> None:
    found = capabilities("carrier-pigeon")
    assert found.scheduling is None and not found.suppression_lists and not found.reports


class Toy(Transport):
    """A provider that refuses some names in `build`, takes requests up to a size, and (with
    `each`) hands its items over one at a time, checking the caller was told every earlier
    item before it hands the next over."""

    name = label = "toy"

    def __init__(self, refuse: set[str], each: bool = False, limit: int | None = None):
        self.refuse = refuse
        self.reports_each_outcome = each
        self.max_request_bytes = limit
        self.posted: list[list[int]] = []
        self.told: list[int] = []
        self.positions: dict[int, int] = {}

    def build(self, items: Sequence[Item]) -> Request:
        refused = {i.key: "refused by the toy" for i in items if i.recipient.name in self.refuse}
        return Request(items, 10 * len(items), refused)

    def post(self, items: Sequence[Item], request: Request,
             tell: OutcomeSink | None = None) -> BatchResult:
        self.posted.append([i.key for i in items])
        outcomes = []
        for index, item in enumerate(items):
            if tell is not None:  # everything before this item was told already
                assert self.told == list(range(self.positions[item.key])), (item, self.told)
            outcome = Outcome("accepted", provider_id=f"toy-{item.key}")
            outcomes.append(outcome)
            if tell is not None and not tell(index, outcome):
                return BatchResult(outcomes + [Outcome("retry")] * (len(items) - len(outcomes)))
        return BatchResult(outcomes)


def _items(kinds: list[str]) -> list[Item]:
    """`ok`, `bad` (an address that cannot be put on the wire) or `no` (refused by build)."""
    address = {"ok": "a{}@example.org", "bad": "a{}@exa\nmple.org", "no": "a{}@example.org"}
    return [Item(n + 1, Recipient(address[k].format(n), k)) for n, k in enumerate(kinds)]


@settings(max_examples=examples(60), deadline=None)
@given(kinds=st.lists(st.sampled_from(["ok", "bad", "no"]), min_size=1, max_size=12),
       stop_after=st.integers(0, 14))
def test_each_outcome_is_told_in_order_before_the_next_hand_over(kinds: list[str],
                                                                  stop_after: int) -> None:
    items = _items(kinds)
    toy = Toy({"no"}, each=True)
    toy.positions = {item.key: n for n, item in enumerate(items)}
    toy.open(None)  # type: ignore[arg-type] - the toy renders nothing

    def sink(index: int, outcome: Outcome) -> bool:
        toy.told.append(index)
        return len(toy.told) < stop_after

    result = toy.send(items, sink)
    assert len(result.outcomes) == len(items)
    assert toy.told == list(range(len(toy.told)))  # in order, each once
    for item, outcome in zip(items, result.outcomes, strict=True):
        kind = item.recipient.name
        if kind != "ok":
            assert outcome.state == "failed" and outcome.error
        elif toy.positions[item.key] < len(toy.told):
            assert outcome.state == "accepted"
    assert all(kinds[toy.positions[key]] == "ok" for batch in toy.posted for key in batch)


def test_refused_recipients_never_reach_the_provider_and_large_requests_split() -> None:
    items = _items(["ok", "bad", "no", "ok", "ok", "ok", "ok"])
    toy = Toy({"no"}, limit=25)  # 10 bytes a recipient: at most two per request
    toy.open(None)  # type: ignore[arg-type]
    result = toy.send(items)
    assert [o.state for o in result.outcomes] == ["accepted", "failed", "failed", "accepted",
                                                  "accepted", "accepted", "accepted"]
    assert "cannot be put in a message" in (result.outcomes[1].error or "")
    assert result.outcomes[2].error == "refused by the toy"
    assert toy.posted == [[1, 4], [5], [6, 7]]  # halves, until each fits
    assert toy.check(items) == {2: result.outcomes[1].error, 3: "refused by the toy"}
