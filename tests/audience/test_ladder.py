"""The status ladder: one batch API (newsletter.audience.statuses) that every path uses; here
the audience paths (import, set_status, unsubscribe, add --resubscribe) on both databases, and
the rule itself against a plain statement of it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from newsletter.audience import Status, add_subscriber, get_subscriber, import_csv, set_status
from newsletter.audience import unsubscribe as unsubscribe_address
from newsletter.audience.statuses import RANK, Change, State, decide

ORDER = [Status.ACTIVE, Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED]


@given(current=st.sampled_from(ORDER), wanted=st.sampled_from(ORDER),
       changed=st.integers(0, 100), consented=st.one_of(st.none(), st.integers(0, 100)),
       at=st.integers(0, 100), confirmed=st.booleans())
def test_decide_follows_the_written_rule(current: Status, wanted: Status, changed: int,
                                         consented: int | None, at: int,
                                         confirmed: bool) -> None:
    new = decide(State(current, changed, consented), Change("k", wanted, at, confirmed), 1000)
    status = current if new is None else new.status
    if wanted == Status.ACTIVE:
        comes_back = current != Status.ACTIVE and at >= changed and (
            current == Status.UNSUBSCRIBED or confirmed)
        assert status == (Status.ACTIVE if comes_back or current == Status.ACTIVE else current)
    else:
        protected = current == Status.ACTIVE and consented is not None and at < consented
        climbs = RANK[wanted] > RANK[current] and not protected
        assert status == (wanted if climbs else current)


def _status(engine: Engine, email: str) -> Status:
    with engine.connect() as conn:
        return get_subscriber(conn, email).status


@pytest.mark.parametrize(("before", "file_says", "after"), [
    (Status.ACTIVE, "unsubscribed", Status.UNSUBSCRIBED),
    (Status.UNSUBSCRIBED, "bounced", Status.BOUNCED),
    (Status.BOUNCED, "unsubscribed", Status.BOUNCED),
    (Status.COMPLAINED, "bounced", Status.COMPLAINED),
    (Status.BOUNCED, "active", Status.BOUNCED),
])
def test_import_status_column_climbs_the_ladder(engine: Engine, write_csv, before: Status,
                                                file_says: str, after: Status) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "x@example.org")
        set_status(conn, "x@example.org", before)
    import_csv(engine, write_csv(f"email,status\nx@example.org,{file_says}\n"))
    assert _status(engine, "x@example.org") == after


def test_cli_paths_share_the_ladder(engine: Engine) -> None:
    with engine.begin() as conn:
        add_subscriber(conn, "b@example.org")
        set_status(conn, "b@example.org", Status.BOUNCED)
        assert unsubscribe_address(conn, "b@example.org").status == Status.BOUNCED
        assert set_status(conn, "b@example.org", Status.ACTIVE).status == Status.BOUNCED
        sub, _ = add_subscriber(conn, "b@example.org", resubscribe=True)  # consent
        assert sub.status == Status.ACTIVE and sub.consented_at is not None
        assert unsubscribe_address(conn, "b@example.org").status == Status.UNSUBSCRIBED
