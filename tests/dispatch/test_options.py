"""`SendOptions`: what `newsletter send`'s options ask, refused at once when they exclude each
other (before any database or build work); `--at` parsed to an aware UTC time."""

from __future__ import annotations

import datetime as dt

import pytest

from newsletter.core.errors import NewsletterError
from newsletter.dispatch.options import DEFAULTS, SendOptions, parse_at

AT = dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC)


@pytest.mark.parametrize(("given", "message"), [
    ({"resend_unknown": True, "accept_unknown": True}, "exclude each other"),
    ({"resend_batches": (1, 2), "accept_batches": (2,)}, "both resent and accepted"),
    ({"resend_recipients": ("Ann@example.org",), "accept_recipients": ("ann@EXAMPLE.org",)},
     "ann@example.org cannot be both"),
    ({"at": AT, "undo_window": dt.timedelta(minutes=15)}, "--at and --undo-window"),
])
def test_options_that_exclude_each_other_are_refused(given: dict, message: str) -> None:
    with pytest.raises(NewsletterError, match=message):
        SendOptions(**given)


def test_settling_different_rows_both_ways_is_allowed() -> None:
    options = SendOptions(resend_batches=(1,), accept_batches=(2,),
                          accept_recipients=("b@example.org",))
    assert options.accepting and not DEFAULTS.accepting
    assert DEFAULTS == SendOptions()  # a plain send asks nothing


def test_parse_at() -> None:
    assert parse_at("2026-11-24T14:00Z") == dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC)
    assert parse_at("2026-11-24T15:00+01:00") == dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC)
    with pytest.raises(NewsletterError, match="needs a time zone"):
        parse_at("2026-11-24T14:00")
    with pytest.raises(NewsletterError, match="not a time"):
        parse_at("tomorrow")
