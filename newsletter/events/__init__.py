"""The public side's data work: SendGrid events, suppressions, sign-ups and engagement counts.

Modules: `statuses` (how events retire or restore subscribers), `apply` (a batch of parsed
events in one transaction), `suppressions` (applying SendGrid's suppression lists), `optin`
(double opt-in and unsubscribe by token), `mailer` (the confirmation mail), `stats` (engagement
per send). Parsing and verifying SendGrid's events, and calling its API, is
newsletter.providers.sendgrid's job. Nothing here imports the web stack or dispatch.
"""
