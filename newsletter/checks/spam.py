"""Spam: score the sample message with SpamAssassin's local rules (no network tests).

SpamAssassin takes a second or two to start, so `start()` launches it before the other checks
run and `finish()` collects its verdict afterwards.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from newsletter.checks.model import ERROR, WARNING, Finding

WARN_SCORE, ERROR_SCORE = 3.0, 5.0
COMMAND = ["spamassassin", "-L", "-t"]
TIMEOUT = 60.0
REPORT = re.compile(r"Content analysis details:\s+\(([-\d.]+) points?, ([-\d.]+) required\)")
RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass
class Verdict:
    """SpamAssassin's score for the message and the rules that fired."""

    score: float
    rules: list[tuple[str, float, str]] = field(default_factory=list)  # (name, points, text)


def parse_report(output: str) -> Verdict | None:
    """Read the score and rule table that `spamassassin -t` appends to the message."""
    match = REPORT.search(output)
    if not match:
        return None
    verdict = Verdict(score=float(match.group(1)))
    table = output[match.end() :].split("\n---- ", 1)
    if len(table) < 2:
        return verdict
    for line in table[1].splitlines()[1:]:
        rule = RULE.match(line)
        if rule:
            verdict.rules.append((rule.group(2), float(rule.group(1)), rule.group(3).strip()))
        elif line.startswith(" " * 20) and verdict.rules:  # a wrapped description
            name, points, text = verdict.rules[-1]
            verdict.rules[-1] = (name, points, f"{text} {line.strip()}")
        elif not line.strip():
            break
    return verdict


class SpamCheck:
    """One SpamAssassin run over a message, started early and collected later."""

    def __init__(self, message: bytes):
        self.message = message
        self.process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self.verdict: Verdict | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which(COMMAND[0]) is not None

    def start(self) -> SpamCheck:
        if not self.available():
            return self
        try:
            self.process = subprocess.Popen(
                COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            self.error = str(exc)
        return self

    def cancel(self) -> None:
        """Stop a started run and reap it (when the other checks fail or time runs out)."""
        if self.process is not None:
            self.process.kill()
            self.process.communicate()

    def finish(self) -> list[Finding]:
        if not self.available():
            return [
                Finding(
                    WARNING,
                    "spam.skipped",
                    "SpamAssassin is not installed, so the spam score was not checked",
                    "install it (Debian/Ubuntu: apt-get install spamassassin) and check again",
                    part="message",
                )
            ]
        if self.process is not None:
            try:
                out, err = self.process.communicate(self.message, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.cancel()
                out, err = b"", b"timed out"
            self.verdict = parse_report(out.decode("utf-8", "replace"))
            if self.verdict is None:
                lines = err.decode("utf-8", "replace").strip().splitlines()
                self.error = lines[-1] if lines else "no report"
        if self.verdict is None:
            return [
                Finding(
                    WARNING,
                    "spam.failed",
                    f"SpamAssassin did not score the message: {self.error}",
                    "run `spamassassin -L -t < dist/<slug>/message.eml` to see why",
                    part="message",
                )
            ]
        return self.findings()

    def findings(self) -> list[Finding]:
        verdict = self.verdict
        if verdict is None or verdict.score < WARN_SCORE:
            return []
        fired = [r for r in verdict.rules if r[1] > 0]
        fired.sort(key=lambda r: -r[1])
        rules = "; ".join(f"{name} {points:+.1f} ({text})" for name, points, text in fired)
        return [
            Finding(
                ERROR if verdict.score >= ERROR_SCORE else WARNING,
                "spam.score",
                f"SpamAssassin scores the message {verdict.score:.1f} "
                f"(warning from {WARN_SCORE}, error from {ERROR_SCORE}): {rules}",
                "rewrite what the rules above point at (wording, hidden or low-contrast text, "
                "image-only content, shouting subject lines)",
                part="message",
                excerpt=", ".join(name for name, _, _ in fired[:5]),
            )
        ]
