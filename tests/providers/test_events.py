"""The neutral event vocabulary: bounces carry a severity and drops a reason, nothing else does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent


@given(kind=st.sampled_from(Kind), bounce=st.none() | st.sampled_from(Bounce),
       reason=st.none() | st.sampled_from(DropReason))
def test_only_bounces_have_a_severity_and_only_drops_a_reason(kind, bounce, reason) -> None:
    valid = ((kind == Kind.BOUNCED) == (bounce is not None)
             and (kind == Kind.DROPPED) == (reason is not None))
    make = lambda: ProviderEvent("test", "e1", kind, "a@example.org",  # noqa: E731
                                 bounce=bounce, reason=reason)
    if valid:
        assert make().kind == kind
    else:
        with pytest.raises(ValueError):
            make()
