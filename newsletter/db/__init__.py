"""The database: engine creation, table definitions and numbered schema migrations.

Use `open_database(settings)` to get an Engine whose schema is up to date.
"""

from newsletter.db.database import open_database
from newsletter.db.engine import connect, display_url, write_connection
from newsletter.db.migrations import current_version, latest_version, upgrade

__all__ = [
    "connect",
    "current_version",
    "display_url",
    "latest_version",
    "open_database",
    "upgrade",
    "write_connection",
]
