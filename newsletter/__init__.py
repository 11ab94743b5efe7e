"""newsletter: assemble, check, preview and dispatch an expert-commentary email newsletter."""

__version__ = "0.1.0"
