"""Formatters: the findings as text for people, or as JSON for tools."""

from __future__ import annotations

import json

from newsletter.checks.model import ERROR
from newsletter.checks.runner import Report
from newsletter.core.words import plural

KB = 1024


def summary(report: Report, strict: bool = False) -> str:
    """One line: counts, sizes and the spam score."""
    errors, warnings = len(report.errors), len(report.warnings)
    facts = []
    sizes = report.facts.get("sizes") or {}
    if "html" in sizes:
        facts.append(f"HTML {sizes['html'] / KB:.1f} KB")
    if "message" in sizes:
        facts.append(f"message {sizes['message'] / KB:.1f} KB")
    spam = report.facts.get("spam")
    if spam:
        facts.append(f"SpamAssassin {spam['score']:.1f}")
    verdict = "FAILED" if report.failed(strict) else "ok"
    counts = f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
    tail = f" ({', '.join(facts)})" if facts else ""
    return f"check {report.slug}: {verdict}: {counts}{tail}" + (" [strict]" if strict else "")


def format_text(report: Report, strict: bool = False) -> str:
    """Errors first, each as `where: severity: message [check]` and an indented fix."""
    lines = []
    ordered = sorted(report.findings, key=lambda f: f.severity != ERROR)
    for finding in ordered:
        where = finding.location()
        head = f"{where}: " if where else ""
        lines.append(f"{head}{finding.severity}: {finding.message} [{finding.check}]")
        if finding.fix:
            lines.append(f"    fix: {finding.fix}")
    lines += [f"note: {note}" for note in report.facts.get("direction", [])]
    lines += [f"note: {note}" for note in report.facts.get("dns", [])]
    lines.append(summary(report, strict))
    return "\n".join(lines) + "\n"


def format_json(report: Report, strict: bool = False) -> str:
    return json.dumps(report.to_dict(strict), indent=2, ensure_ascii=False) + "\n"
