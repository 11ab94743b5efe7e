"""Settings from the environment (secrets and machine-specific values only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TRANSPORTS = ("outbox", "smtp", "sendgrid")


@dataclass(frozen=True)
class Settings:
    """Environment settings; see DESIGN.md "Settings from the environment"."""

    root: Path
    database_url: str
    transport: str
    outbox: Path
    smtp_url: str | None
    sendgrid_api_key: str | None
    sendgrid_api_url: str
    secret: str | None
    webhook_public_key: str | None

    @classmethod
    def from_env(cls, root: Path, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        root = root.resolve()
        default_db = f"sqlite:///{root / '.newsletter' / 'newsletter.db'}"
        db = env.get("NEWSLETTER_DATABASE_URL") or default_db
        outbox = Path(env.get("NEWSLETTER_OUTBOX") or "outbox")
        return cls(
            root=root,
            database_url=db,
            transport=env.get("NEWSLETTER_TRANSPORT") or "outbox",
            outbox=outbox if outbox.is_absolute() else root / outbox,
            smtp_url=env.get("SMTP_URL") or None,
            sendgrid_api_key=env.get("SENDGRID_API_KEY") or None,
            sendgrid_api_url=(env.get("SENDGRID_API_URL") or "https://api.sendgrid.com").rstrip(
                "/"
            ),
            secret=env.get("NEWSLETTER_SECRET") or None,
            webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
        )
