"""Tables for: Monthly metrics reports and the email send ledger. Defined on the shared `metadata`; created by migration 0004_reports.

`metrics_reports` holds one row per (practice, report window): the send ledger that makes a report go out once
however often the DAG is re-run or retried, plus the aggregate figures that were sent (practice totals only, never
a patient's data).
"""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Date, ForeignKey, Integer, PrimaryKeyConstraint, String, Table

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import CONN_ID, SLUG, metadata

# sending: claimed, the SMTP conversation may be under way (or was interrupted: delivery unknown)
# sent: the SMTP server accepted the message; failed: it did not (safe to try again)
REPORT_STATUSES = ("sending", "sent", "failed")

metrics_reports = Table(
    "metrics_reports",
    metadata,
    Column("practice_slug", String(SLUG), ForeignKey("practices.slug", ondelete="RESTRICT"), nullable=False),
    Column("window_start", Date, nullable=False),
    Column("window_end", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("recipients_count", Integer, nullable=False),
    Column("run_id", String(CONN_ID), nullable=False),
    Column("message_id", String(250), nullable=True),
    Column("error", String(200), nullable=True),
    Column("figures", JSON(none_as_null=True), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("practice_slug", "window_start", "window_end"),
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in REPORT_STATUSES)})", name="status"),
)
