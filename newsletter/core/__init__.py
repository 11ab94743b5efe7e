"""Shared helpers every layer may use: errors, settings, tokens, personalisation, YAML sources."""
