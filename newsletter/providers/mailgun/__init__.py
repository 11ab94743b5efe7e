"""Mailgun, both directions: sending through the messages API with recipient variables
(transport, payload), its bounce, complaint and unsubscribe lists, and its signed webhooks."""
