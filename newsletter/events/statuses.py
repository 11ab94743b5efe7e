"""How events, suppressions and unsubscribe links change a subscriber's status.

The ladder and its one batch API live in the audience layer (newsletter.audience.statuses) so
that the webhook, the suppression sync, the public pages and the CLI all share them; this
module names them for the events package.
"""

from newsletter.audience.statuses import RANK, Change, State, apply_changes, decide

__all__ = ["RANK", "Change", "State", "apply_changes", "decide"]
