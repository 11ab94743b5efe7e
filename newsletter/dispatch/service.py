"""The dispatch services the CLI (and the preview server) call, in one place.

- plan.py: `plan_send()` checks everything that can be checked before anything is sent and
  decides whether this is a new send or the resumption of an earlier one (`SendPlan`);
- execute.py: `execute()` runs a plan under the ledger, `send_issue()` plans and runs at once;
- dry_run.py: `dry_run()` does everything but hand messages over;
- trial.py: `send_test()` mails a [TEST] copy outside the ledger;
- status.py: `sends_for()` (for `newsletter status`), `cancel_scheduled()` and
  `last_completed_send()` (for `new --from-feed`);
- editions.py: `plan_editions()` (`send --editions`);
- options.py: `SendOptions` (what `newsletter send`'s options ask), `parse_at()`,
  `parse_window()`, `utc_minute()`.
"""

from __future__ import annotations

from newsletter.dispatch.dry_run import DryRun, dry_run
from newsletter.dispatch.execute import SendResult, execute, send_issue
from newsletter.dispatch.options import SendOptions, parse_at, parse_window, utc_minute
from newsletter.dispatch.plan import plan_send
from newsletter.dispatch.send_plan import SendPlan
from newsletter.dispatch.status import (
    SendStatus,
    cancel_scheduled,
    last_completed_send,
    sends_for,
)
from newsletter.dispatch.trial import TestResult, send_test

__all__ = [
    "DryRun",
    "SendOptions",
    "SendPlan",
    "SendResult",
    "SendStatus",
    "TestResult",
    "cancel_scheduled",
    "dry_run",
    "execute",
    "last_completed_send",
    "parse_at",
    "parse_window",
    "plan_send",
    "send_issue",
    "send_test",
    "sends_for",
    "utc_minute",
]
