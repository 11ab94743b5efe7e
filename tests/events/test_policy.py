"""The one policy: what each provider event asks of a subscriber's status."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.model import Status
from newsletter.events.policy import (
    STORED,
    SoftBounceLimit,
    status_for,
    stored,
    suppressed_status,
)
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
    def details(kind: Kind) -> list:
        return (list(Bounce) if kind == Kind.BOUNCED else list(DropReason)
                if kind == Kind.DROPPED else [None])

    assert set(STORED) == {(k, d) for k in Kind for d in details(k)}
    assert stored(ProviderEvent("t", "e", Kind.BOUNCED, "a@example.org",
                                bounce=Bounce.HARD)) == ("bounce", "bounces")


def test_stored_names_keep_what_the_store_always_called_them() -> None:
    """The names SendGrid's events were stored under before events were neutral: the rows
    already in webhook_events and every report and counter read them."""
    def name(kind: Kind, **extra) -> tuple[str, str | None]:
        return stored(ProviderEvent("t", "e", kind, "a@example.org", **extra))

    assert name(Kind.QUEUED) == ("processed", None)
    assert name(Kind.UNSUBSCRIBED) == ("unsubscribe", "unsubscribes")
    assert name(Kind.UNSUBSCRIBED, group="7") == ("group_unsubscribe", "unsubscribes")
    assert name(Kind.RESUBSCRIBED, group="7") == ("group_resubscribe", None)
    assert name(Kind.DROPPED, reason=DropReason.BOUNCED) == ("dropped_invalid", "dropped")
    assert name(Kind.DROPPED, reason=DropReason.COMPLAINED) == ("dropped_spam", "dropped")
    assert name(Kind.DROPPED, reason=DropReason.OTHER) == ("dropped", "dropped")
    assert name(Kind.BOUNCED, bounce=Bounce.SOFT) == ("blocked", "blocked")


@given(reason=st.sampled_from(list(DropReason)))
def test_a_suppression_list_entry_counts_as_a_drop_for_its_reason(reason: DropReason) -> None:
    drop = ProviderEvent("t", "e", Kind.DROPPED, "a@example.org", reason=reason)
    assert suppressed_status(reason) == status_for(drop)
