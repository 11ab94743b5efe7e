"""The decision of a subject test: the two-proportion test against a plain reference (the 2x2
chi-square test of independence, computed from the contingency table), and the rules that pick
the winner or say "no clear winner"."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.dispatch.subjects.decide import ArmFigures, decide, two_proportion
from tests.conftest import examples


def _chi_square_p(a: int, b: int, c: int, d: int) -> float:
    """p-value of Pearson's chi-square test (1 degree of freedom, no continuity correction)
    of the table [[a, b], [c, d]] (people who acted and did not, per share)."""
    n = a + b + c + d
    rows, cols = (a + b, c + d), (a + c, b + d)
    if 0 in rows or 0 in cols:
        return 1.0
    chi2 = 0.0
    for observed, r, k in ((a, 0, 0), (b, 0, 1), (c, 1, 0), (d, 1, 1)):
        expected = rows[r] * cols[k] / n
        chi2 += (observed - expected) ** 2 / expected
    return math.erfc(math.sqrt(chi2 / 2))  # the chi-square(1) tail: P(Z^2 > chi2)


shares = st.integers(1, 5000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n)))


@settings(max_examples=examples(200), deadline=None)
@given(shares, shares)
def test_the_z_test_agrees_with_the_chi_square_test(first, second) -> None:
    (n1, x1), (n2, x2) = first, second
    z, p = two_proportion(x1, n1, x2, n2)
    expected = _chi_square_p(x1, n1 - x1, x2, n2 - x2)
    assert math.isclose(p, expected, rel_tol=1e-6, abs_tol=1e-12), (z, p, expected)
    assert (z > 0) == (x1 / n1 > x2 / n2) or z == 0


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(shares, min_size=2, max_size=4), st.sampled_from([0.01, 0.05, 0.1]))
def test_the_winner_beats_every_other_subject_at_the_corrected_level(arms, level) -> None:
    figures = [ArmFigures(f"subject {i}", n, x) for i, (n, x) in enumerate(arms)]
    decision = decide(figures, level, "clicks")
    rates = [f.rate for f in figures]
    if decision.clear:
        assert rates[decision.winner] == max(rates)
        won = figures[decision.winner]
        for other, figure in enumerate(figures):
            if other != decision.winner:
                p = _chi_square_p(won.people, won.reached - won.people, figure.people,
                                  figure.reached - figure.people)
                assert p < level / (len(arms) - 1)
        assert decision.note.startswith(f"{chr(65 + decision.winner)} won")
    else:
        assert decision.winner == 0 and decision.note.startswith("no clear winner")
        best = max(range(len(arms)), key=lambda i: (rates[i], -i))
        worst_p = max(_chi_square_p(figures[best].people, figures[best].reached -
                                    figures[best].people, f.people, f.reached - f.people)
                      for i, f in enumerate(figures) if i != best)
        assert worst_p >= level / (len(arms) - 1) - 1e-12 or rates.count(rates[best]) > 1


def test_a_clear_difference_wins_and_a_small_one_falls_back_to_the_first() -> None:
    clear = decide([ArmFigures("A", 1000, 20), ArmFigures("B", 1000, 60)], 0.05, "clicks")
    assert (clear.winner, clear.clear) == (1, True)
    assert "B won" in clear.note and "2.0% of 1,000" in clear.note and "6.0%" in clear.note
    close = decide([ArmFigures("A", 1000, 20), ArmFigures("B", 1000, 26)], 0.05, "clicks")
    assert (close.winner, close.clear) == (0, False)
    assert "no clear winner" in close.note and "the first subject (A)" in close.note
    few = decide([ArmFigures("A", 40, 1), ArmFigures("B", 40, 3)], 0.05, "opens")
    assert "fewer than 5 people opened" in few.note and not few.clear
    nobody = decide([ArmFigures("A", 0, 0), ArmFigures("B", 0, 0)], 0.05, "clicks")
    assert (nobody.winner, nobody.clear, nobody.p_value) == (0, False, 1.0)
