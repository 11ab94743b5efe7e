"""The database: engine creation, table definitions and numbered schema migrations.

Use `open_database(settings)` to get an Engine whose schema is up to date (`with
database(settings) as engine:` closes it after the block).
"""

from newsletter.db.database import database, open_database
from newsletter.db.engine import connect, display_url, write_connection
from newsletter.db.migrate import current_version
from newsletter.db.migrations import latest_version, upgrade

__all__ = [
    "connect",
    "current_version",
    "database",
    "display_url",
    "latest_version",
    "open_database",
    "upgrade",
    "write_connection",
]
