"""The one policy: what each provider event asks of a subscriber's status."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.model import Status
from newsletter.events.policy import STORED, SoftBounceLimit, status_for, stored
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from tests.conftest import examples


def reference(kind: Kind, bounce: Bounce | None, reason: DropReason | None, soft: int,
              limit: int) -> Status | None:
    """The rules as docs/deliverability.md words them, one by one."""
    if kind == Kind.BOUNCED and bounce == Bounce.HARD:
        return Status.BOUNCED
    if kind == Kind.BOUNCED:
        return Status.BOUNCED if soft >= limit else None
    if kind == Kind.COMPLAINED or (kind == Kind.DROPPED and reason == DropReason.COMPLAINED):
        return Status.COMPLAINED
    if kind == Kind.DROPPED and reason in (DropReason.INVALID, DropReason.BOUNCED):
        return Status.BOUNCED
    if kind == Kind.UNSUBSCRIBED or (kind == Kind.DROPPED and
                                     reason == DropReason.UNSUBSCRIBED):
        return Status.UNSUBSCRIBED
    if kind == Kind.RESUBSCRIBED:
        return Status.ACTIVE
    return None


@st.composite
def events(draw) -> ProviderEvent:
    kind = draw(st.sampled_from(list(Kind)))
    bounce = draw(st.sampled_from(list(Bounce))) if kind == Kind.BOUNCED else None
    reason = draw(st.sampled_from(list(DropReason))) if kind == Kind.DROPPED else None
    return ProviderEvent("test", "e1", kind, "a@example.org", bounce=bounce, reason=reason)


@settings(max_examples=examples(100), deadline=None)
@given(event=events(), soft=st.integers(0, 10), limit=st.integers(1, 6))
def test_policy_matches_the_rules(event: ProviderEvent, soft: int, limit: int) -> None:
    got = status_for(event, soft, SoftBounceLimit(count=limit, days=30))
    assert got == reference(event.kind, event.bounce, event.reason, soft, limit)
    name, counter = stored(event)
    assert name and len(name) <= 32  # webhook_events.event


def test_every_kind_has_a_stored_name() -> None:
    wanted = {(k, b) for k in Kind for b in (list(Bounce) if k == Kind.BOUNCED else [None])}
    assert set(STORED) == wanted
    assert stored(ProviderEvent("t", "e", Kind.BOUNCED, "a@example.org",
                                bounce=Bounce.HARD)) == ("bounce", "bounces")
