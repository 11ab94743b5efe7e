"""The subjects of a subject test (`send --test-subjects A --test-subjects B`): each checked as
the issue's own subject is, since each goes to real readers.

Per subject: empty or holding a line break (an error), its length (a warning outside 10-78
characters), personalisation placeholders the send cannot fill (a warning) and leftovers such
as TK or lorem ipsum (an error); two subjects alike (an error: the test would tell nothing).
Each subject's message is scored by SpamAssassin like the issue's (all of them at once, beside
the other checks): a score from 5 is an error, from 3 a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from newsletter.checks.content import SUBJECT_MAX, SUBJECT_MIN
from newsletter.checks.leftovers import LEFTOVER_FIX, LEFTOVERS
from newsletter.checks.model import ERROR, WARNING, Finding
from newsletter.checks.spam import SpamCheck
from newsletter.core.personalise import KEYS, PLACEHOLDER
from newsletter.core.words import letter as label

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication


def _text_problems(subject: str) -> list[tuple[str, str, str, str]]:
    """(severity, check, message, fix) for one subject's wording."""
    found: list[tuple[str, str, str, str]] = []
    text = subject.strip()
    if not text:
        return [(ERROR, "content.subject", "the subject is empty", "write a subject line")]
    control = next((c for c in subject if ord(c) < 32 or ord(c) == 127), None)
    if control is not None:
        found.append((ERROR, "content.subject", "the subject holds a line break or another "
                      "control character", "write the subject on one line"))
    if not SUBJECT_MIN <= len(text) <= SUBJECT_MAX:
        side = "short" if len(text) < SUBJECT_MIN else "long"
        found.append((WARNING, "content.subject-length",
                      f"the subject is too {side}: {len(text)} characters (keep it between "
                      f"{SUBJECT_MIN} and {SUBJECT_MAX})",
                      "inboxes cut long subjects and short ones say too little; rewrite it"))
    for match in PLACEHOLDER.finditer(subject):
        key = match.group(1)
        if key not in KEYS and not key.startswith("attr."):
            found.append((WARNING, "content.placeholder",
                          f"unknown personalisation placeholder {match.group(0)} will be left "
                          "blank", f"use one of {', '.join(sorted(KEYS))} or attr.<name>"))
    lowered = subject.lower()
    for kind in LEFTOVERS:
        if kind.count(subject, lowered):
            found.append((ERROR, "content.leftover", f"leftover placeholder {kind.label}",
                          LEFTOVER_FIX))
    return found


def check_subjects(pub: Publication, build: Build, subjects: Sequence[str], *,
                   spam: bool = True) -> list[Finding]:
    """Every finding about the test subjects of `build` (errors block the send)."""
    from newsletter.compose.pipeline import sample_message

    findings: list[Finding] = []
    runs: list[tuple[int, SpamCheck]] = []
    seen: dict[str, int] = {}
    for index, subject in enumerate(subjects):
        name = f"test subject {label(index)} ({subject.strip()[:60]!r})"
        for severity, check, message, fix in _text_problems(subject):
            findings.append(Finding(severity, check, f"{name}: {message}", fix,
                                    part="subject", excerpt=subject.strip()[:70]))
        key = " ".join(subject.split()).casefold()
        if key in seen:
            findings.append(Finding(ERROR, "content.subject-test",
                                    f"{name} is the same as test subject {label(seen[key])}",
                                    "give every test subject different words",
                                    part="subject"))
        seen.setdefault(key, index)
        if spam and subject.strip():
            message = sample_message(pub, build.issue, subject, build.html, build.text,
                                     build.content_hash, build.config)
            runs.append((index, SpamCheck(message).start()))
    if len(subjects) < 2:
        findings.append(Finding(ERROR, "content.subject-test", "a subject test needs at least "
                                "two subjects", "repeat --test-subjects for each subject",
                                part="subject"))
    for index, run in runs:
        for found in run.finish():
            if found.check == "spam.skipped" and index:
                continue  # said once
            findings.append(Finding(found.severity, found.check,
                                    f"test subject {label(index)}: {found.message}", found.fix,
                                    part="subject", excerpt=subjects[index].strip()[:70]))
    return findings


def require_subjects(pub: Publication, build: Build, subjects: Sequence[str]) -> None:
    """The gate a subject test passes besides the issue's own (newsletter.checks.runner's
    `require_passing`): refuse (FailedError) on any error about its subjects."""
    from newsletter.core.errors import FailedError
    from newsletter.core.words import plural

    errors = [f for f in check_subjects(pub, build, subjects) if f.severity == ERROR]
    if errors:
        raise FailedError(f"newsletter check found {plural(len(errors), 'error')} in the test "
                          f"subjects of {build.slug}; nothing was sent.\n"
                          + "\n".join(f"{f.message} [{f.check}]" for f in errors))
