"""SendGrid, both directions: sending (transport, payload, scheduled-send batches), its
suppression lists, and its Event Webhook (parsing and signature)."""
