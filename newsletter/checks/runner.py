"""Run every check on a built issue and collect the findings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.checks.accessibility import check_accessibility
from newsletter.checks.clients import check_clients
from newsletter.checks.compliance import check_compliance
from newsletter.checks.content import check_content
from newsletter.checks.direction import check_direction
from newsletter.checks.draft import check_draft
from newsletter.checks.images import check_images
from newsletter.checks.leftovers import check_leftovers
from newsletter.checks.links import check_links
from newsletter.checks.model import ERROR, WARNING, Context, Finding
from newsletter.checks.size import check_size
from newsletter.checks.spam import SpamCheck
from newsletter.core.errors import FailedError, InputError, Problem
from newsletter.core.words import plural

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

Check = Callable[[Context], list[Finding]]
OFFLINE: list[tuple[str, Check]] = [
    ("content", check_content),
    ("leftovers", check_leftovers),
    ("draft", check_draft),
    ("size", check_size),
    ("images", check_images),
    ("links", check_links),
    ("compliance", check_compliance),
    ("clients", check_clients),
    ("accessibility", check_accessibility),
    ("direction", check_direction),
]


@dataclass
class Report:
    """The findings, plus facts worth showing even when nothing is wrong."""

    slug: str
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def failed(self, strict: bool = False) -> bool:
        """Errors fail a check; with `strict`, warnings do too."""
        return bool(self.errors or (strict and self.warnings))

    def to_dict(self, strict: bool = False) -> dict[str, Any]:
        return {
            "issue": self.slug,
            "ok": not self.failed(strict),
            "strict": strict,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "facts": self.facts,
            "findings": [f.to_dict() for f in self.findings],
        }


def run(
    pub: Publication,
    build: Build,
    *,
    online: bool = False,
    spam: bool = True,
    timeout: float = 10.0,
    transport: str | None = None,
    dns: bool = False,
    subjects: Sequence[str] = (),
) -> Report:
    """Run every check; SpamAssassin runs alongside the offline checks; with `dns`, the From
    domain's DMARC policy too (newsletter.checks.dmarc).

    `transport`: judge the issue for this transport (default: NEWSLETTER_TRANSPORT).
    `subjects`: the subjects of a subject test, each checked (newsletter.checks.subjects)."""
    spam_check = SpamCheck(build.message).start() if spam else None
    ctx = Context(pub, build, online=online, timeout=timeout, transport=transport)
    report = Report(slug=build.slug)
    report.findings += [_from_problem(p) for p in build.warnings if p.severity == WARNING]
    try:
        for _name, check in OFFLINE:
            report.findings += check(ctx)
        if subjects:
            from newsletter.checks.subjects import check_subjects

            report.findings += check_subjects(pub, build, subjects, spam=spam)
        if online:
            from newsletter.checks.online import check_online

            report.findings += check_online(ctx)
        if dns:
            from newsletter.checks.dmarc import check_dmarc

            report.findings += check_dmarc(ctx)
    except BaseException:
        if spam_check is not None:
            spam_check.cancel()
        raise
    report.facts["sizes"] = ctx.extra.get("sizes", {})
    if ctx.extra.get("direction_notes"):
        report.facts["direction"] = ctx.extra["direction_notes"]
    if ctx.extra.get("dns_notes"):
        report.facts["dns"] = ctx.extra["dns_notes"]
    if spam_check is not None:
        report.findings += spam_check.finish()
        if spam_check.verdict is not None:
            report.facts["spam"] = {
                "score": spam_check.verdict.score,
                "rules": [
                    {"rule": name, "points": points, "description": text}
                    for name, points, text in spam_check.verdict.rules
                ],
            }
    return report


def run_checks(
    pub: Publication,
    build: Build,
    *,
    online: bool = False,
    spam: bool = True,
    timeout: float = 10.0,
    subjects: Sequence[str] = (),
) -> list[Finding]:
    """Every finding for a built issue (errors block a send; warnings are advice)."""
    return run(pub, build, online=online, spam=spam, timeout=timeout,
               subjects=subjects).findings


def _from_problem(problem: Problem) -> Finding:
    file = str(problem.file) if problem.file else None
    return Finding(problem.severity, "source", problem.message, "", file=file, line=problem.line)


def check_issue(
    pub: Publication,
    issue: str | Path,
    *,
    online: bool = False,
    spam: bool = True,
    timeout: float = 10.0,
    transport: str | None = None,
    dns: bool = True,
    subjects: Sequence[str] = (),
) -> Report:
    """Build ISSUE and check it (`newsletter check`: the DMARC check included unless `dns` is
    false; `subjects`: a subject test's, each checked too); a build that fails on bad input
    becomes error findings."""
    from newsletter.compose import build_issue

    try:
        build = build_issue(pub, issue)
    except InputError as exc:
        return Report(
            slug=Path(str(issue)).name,
            findings=[_from_problem(p) for p in exc.problems],
            facts={"unbuilt": True},
        )
    return run(pub, build, online=online, spam=spam, timeout=timeout, transport=transport,
               dns=dns, subjects=subjects)


def require_passing(pub: Publication, build: Build, subjects: Sequence[str] = ()) -> Report:
    """The gate that `send` (dry runs too) and `send-test` pass first: refuse on any error.

    Runs the offline checks, SpamAssassin included (and for each of a subject test's
    `subjects`); warnings do not block.
    """
    report = run(pub, build, spam=True, subjects=subjects)
    if report.errors:
        lines = [
            f"{f.location()}: {f.message} [{f.check}]"
            if f.location()
            else f"{f.message} [{f.check}]"
            for f in report.errors
        ]
        raise FailedError(
            f"newsletter check found {plural(len(lines), 'error')} in {build.slug}; nothing was "
            "sent.\n"
            + "\n".join(lines)
            + f"\nRun `newsletter check {build.slug}` for how to fix each one."
        )
    return report
