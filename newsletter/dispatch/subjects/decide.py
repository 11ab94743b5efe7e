"""Deciding a subject test: the subject whose share had the higher rate of people who clicked
(or opened), if the difference is significant; otherwise "no clear winner", and the first
subject goes to the rest.

The rate is of people, judged human (newsletter.events.classify: link scanners and image
proxies do not count), over the people each share reached. Significance is the two-proportion
z-test with a pooled proportion (the same as a 2x2 chi-square test without continuity
correction), two-sided. With more than two subjects the leader is compared with each of the
others at the level divided by their number (Bonferroni), and must beat them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from newsletter.core.words import letter as label

#: a share with fewer of its people counted than this gives a rough p-value (a note says so)
FEW = 5


@dataclass(frozen=True)
class ArmFigures:
    """What one subject's share did by the decision."""

    subject: str
    reached: int  # people the send of this subject reached
    people: int  # of them, people who clicked (or opened), judged human
    machine: int = 0  # people whose only clicks (or opens) were a machine's

    @property
    def rate(self) -> float:
        return self.people / self.reached if self.reached else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"rate": self.rate}


@dataclass(frozen=True)
class Decision:
    winner: int  # index of the subject the rest gets
    clear: bool  # False: no clear winner (the first subject)
    p_value: float | None  # of the closest comparison the leader had to win
    note: str
    figures: list[ArmFigures]


def two_proportion(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p-value) of the difference between x1/n1 and x2/n2 (pooled)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    spread = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if spread <= 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(spread)
    return z, math.erfc(abs(z) / math.sqrt(2))


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def decide(figures: Sequence[ArmFigures], level: float, measure: str) -> Decision:
    """The decision of a test whose shares did `figures` (in the order of the subjects)."""
    verb = "clicked" if measure == "clicks" else "opened"
    arms = list(figures)
    leader = max(range(len(arms)), key=lambda i: (arms[i].rate, -i))
    others = [i for i in range(len(arms)) if i != leader]
    each = level / max(1, len(others))
    tests = {i: two_proportion(arms[leader].people, arms[leader].reached, arms[i].people,
                               arms[i].reached) for i in others}
    closest = max(others, key=lambda i: tests[i][1]) if others else leader
    p = tests[closest][1] if others else 1.0
    z = tests[closest][0] if others else 0.0
    shown = "; ".join(f"{label(i)} {_percent(a.rate)} of {a.reached:,} ({a.people:,} people "
                      f"{verb})" for i, a in enumerate(arms))
    corrected = f" (the level {level:g} divided by {len(others)} comparisons)" \
        if len(others) > 1 else ""
    few = any(a.people < FEW for a in arms)
    rough = (f"; fewer than {FEW} people {verb} in a share, so the test can hardly tell"
             if few else "")
    if others and p < each and arms[leader].rate > arms[closest].rate:
        note = (f"{label(leader)} won: {shown}. Two-proportion test against "
                f"{label(closest)}: z = {z:.2f}, p = {p:.3g} < {each:.3g}{corrected}{rough}.")
        return Decision(leader, True, p, note, arms)
    note = (f"no clear winner: {shown}. Two-proportion test of {label(leader)} against "
            f"{label(closest)}: p = {p:.3g}, not below {each:.3g}{corrected}{rough}; the first "
            f"subject ({label(0)}) goes to the rest.")
    return Decision(0, False, p, note, arms)
