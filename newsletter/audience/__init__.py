"""The audience: subscribers, CSV import and export, and segments compiled to SQL."""

from newsletter.audience.exporter import export_csv
from newsletter.audience.importer import ImportReport, import_csv
from newsletter.audience.model import RETIRED, Status, Subscriber, email_key, normalize_email
from newsletter.audience.segments import Segment, Segments
from newsletter.audience.subscribers import (
    add_subscriber,
    count_subscribers,
    get_subscriber,
    iter_batches,
    iter_subscribers,
    require_subscriber,
    set_status,
    unsubscribe,
)

__all__ = [
    "RETIRED",
    "ImportReport",
    "Segment",
    "Segments",
    "Status",
    "Subscriber",
    "add_subscriber",
    "count_subscribers",
    "email_key",
    "export_csv",
    "get_subscriber",
    "import_csv",
    "iter_batches",
    "iter_subscribers",
    "normalize_email",
    "require_subscriber",
    "set_status",
    "unsubscribe",
]
