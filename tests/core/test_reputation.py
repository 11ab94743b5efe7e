"""The reputation guard's one rule (newsletter.core.reputation.judge) against a plain reference
in exact fractions, its settings as newsletter.yaml spells them, and the published limits."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.compose.schema import ReputationConfig
from newsletter.core.reputation import (
    LIMITS,
    Figures,
    Thresholds,
    judge,
    limits_of,
    parse_percent,
    passed,
    setting,
)
from tests.conftest import examples

#: thresholds as people write them: whole and decimal percentages
PERCENTS = st.sampled_from(["0.05%", "0.1%", "0.3%", "1%", "2.5%", "5%", "10%", "33.3%"])


def reference(handed: int, count: int, written: str, min_sample: int) -> str:
    """"pause", "warn" or "" for one rate, by hand: exact fractions of the written percent."""
    if handed < min_sample or handed == 0:
        return ""
    limit = Fraction(written.rstrip("%")) / 100
    rate = Fraction(count, handed)
    return "pause" if rate > limit else "warn" if rate >= limit / 2 else ""


@settings(max_examples=examples(300), deadline=None)
@given(handed=st.integers(0, 5000), hard=st.integers(0, 400), complaints=st.integers(0, 40),
       bounce=PERCENTS, complaint=PERCENTS, min_sample=st.integers(1, 2000))
def test_judge_agrees_with_the_plain_rule(handed: int, hard: int, complaints: int, bounce: str,
                                          complaint: str, min_sample: int) -> None:
    hard, complaints = min(hard, handed), min(complaints, handed)
    config = ReputationConfig(min_sample=min_sample, bounce_pause=bounce,
                              complaint_pause=complaint)
    verdict = judge(Figures(handed, hard, complaints), config.thresholds)
    expected = {"hard bounces": reference(handed, hard, bounce, min_sample),
                "complaints": reference(handed, complaints, complaint, min_sample)}
    paused = {name for name, said in expected.items() if said == "pause"}
    warned = {name for name, said in expected.items() if said == "warn"}
    assert verdict.judged == (handed >= min_sample and handed > 0)
    assert (verdict.pause is not None) == bool(paused)
    assert {w.split(" at ", 1)[0] for w in verdict.warnings} == warned
    for name in paused:
        assert f"{name} at " in (verdict.pause or "")


def test_exactly_at_the_threshold_is_not_over_it() -> None:
    limits = Thresholds(min_sample=300, bounce_pause=0.05, complaint_pause=0.001)
    assert judge(Figures(300, 15, 0), limits).pause is None  # 5% exactly
    over = judge(Figures(300, 16, 0), limits)
    assert over.pause == ("hard bounces at 5.33% (16 of 300 handed over) are over "
                          "bounce_pause 5%")
    assert judge(Figures(1000, 0, 1), limits).warnings == (
        "complaints at 0.10% (1 of 1,000 handed over) have reached half of complaint_pause "
        "0.1%",)
    assert judge(Figures(299, 299, 299), limits).pause is None  # below the sample: silent


def test_figures_since_a_resume() -> None:
    whole = Figures(1000, 60, 2, refused=10)
    stretch = whole.since(Figures(400, 50, 2))
    assert stretch == Figures(600, 10, 0, 10)
    assert stretch.bounce_rate == pytest.approx(10 / 600)
    assert Figures().bounce_rate == 0.0 and Figures().complaint_rate == 0.0


@pytest.mark.parametrize("written, fraction", [("5%", 0.05), ("0.1%", 0.001), (" 2.5 % ", 0.025),
                                               ("100%", 1.0)])
def test_percentages(written: str, fraction: float) -> None:
    assert parse_percent(written) == pytest.approx(fraction)
    assert setting(parse_percent(written.replace(" ", ""))) == written.replace(" ", "")


@pytest.mark.parametrize("written", [0.05, 5, "5", "0%", "120%", "five%", True, "-1%"])
def test_bad_percentages(written: object) -> None:
    with pytest.raises(ValueError):
        parse_percent(written)


def test_the_settings_in_newsletter_yaml(publication) -> None:
    """`reputation:` in newsletter.yaml: defaults, percentages, and one clear error with
    its line for a bare number."""
    from newsletter.compose.publication import Publication
    from newsletter.core.errors import InputError

    assert Publication.load(publication).config.reputation.thresholds == Thresholds()
    config = publication / "newsletter.yaml"
    original = config.read_text(encoding="utf-8")
    config.write_text(original + "reputation: {min_sample: 200, bounce_pause: 2%, "
                      "complaint_pause: 0.05%}\n", encoding="utf-8")
    assert Publication.load(publication).config.reputation.thresholds == Thresholds(
        200, 0.02, 0.0005)
    line = len(original.splitlines()) + 2
    config.write_text(original + "reputation:\n  bounce_pause: 0.05\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        Publication.load(publication).config  # noqa: B018
    text = str(caught.value)
    assert f"newsletter.yaml:{line}" in text and "write it like 5% or 0.1%" in text


def test_published_limits() -> None:
    assert limits_of("complaints") == (
        "Gmail: aim under 0.1%; Gmail and Yahoo, bulk senders: stay under 0.3%; Amazon SES: "
        "reviews an account at 0.1%, pauses an account at 0.5%")
    assert limits_of("bounces") == ("Amazon SES: reviews an account at 5%, pauses an account "
                                    "at 10%")
    assert [limit.who for limit in passed("complaints", 0.003)] == [
        "Gmail", "Gmail and Yahoo, bulk senders", "Amazon SES"]
    assert passed("bounces", 0.049) == [] and len(LIMITS) == 6
