"""Postmark, both directions: sending through the batch API (transport, payload), its
suppression dump per message stream, and its webhooks (basic auth, one event per post)."""
