"""Pre-send quality gate: `newsletter check`, also run by `send`, `send-test` and the preview.

    from newsletter.checks import run_checks
    findings = run_checks(pub, build)              # list[Finding]; errors block a send
    report = run(pub, build, online=False, spam=True)   # findings plus facts (sizes, spam score)

One module per family of checks: content, size, links (+ online), compliance, clients,
accessibility, spam. Each takes a Context (publication, build, HTML parsed once, message) and
returns Findings.
"""

from newsletter.checks.model import ERROR, WARNING, Context, Finding
from newsletter.checks.report import format_json, format_text, summary
from newsletter.checks.runner import Report, check_issue, require_passing, run, run_checks

__all__ = [
    "ERROR",
    "WARNING",
    "Context",
    "Finding",
    "Report",
    "check_issue",
    "format_json",
    "format_text",
    "require_passing",
    "run",
    "run_checks",
    "summary",
]
