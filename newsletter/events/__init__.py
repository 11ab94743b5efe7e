"""The public side's data work: SendGrid events, suppressions, sign-ups and engagement counts.

Modules: `model` (parsing events into a closed set), `signature` (signed Event Webhook),
`statuses` (how events retire or restore subscribers), `apply` (a batch in one transaction),
`suppressions` (pulling SendGrid's suppression lists), `optin` (double opt-in and unsubscribe
by token), `stats` (engagement per send). Nothing here imports the web stack.
"""
