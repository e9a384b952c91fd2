"""Tables for: Cherry webhooks received. Defined on the shared `metadata`; created by migration 0007_webhook_inbox.

`webhook_inbox` is the landing table of the webhook receiver: one row per (practice, Cherry event id), written
before the receiver answers 2xx, so an event Cherry was told we have is never lost; the refresh applies pending
rows through the event engine and stamps `applied_at`. `id` only orders rows and lets the inbox watcher ask
"anything after the last row I saw?"; SQLite's AUTOINCREMENT keeps ids from being reused after a prune.
The practice is not a foreign key: the receiver may store an event before the practice's first run registered it
in `practices`, and a landing table must not refuse what Cherry already sent.

`webhook_rejections` counts what the receiver refused, per practice (or `(unknown)`) and reason, without the body.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, PrimaryKeyConstraint, String, Table, UniqueConstraint

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import EXTERNAL_ID, SLUG, metadata

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("practice_slug", String(SLUG), nullable=False),
    Column("event_id", String(EXTERNAL_ID), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("applied_at", UTCDateTime, nullable=True),
    UniqueConstraint("practice_slug", "event_id"),
    # Pending rows (applied_at NULL): the refresh reads one practice's, the inbox watcher everyone's.
    Index(None, "applied_at", "practice_slug"),
    sqlite_autoincrement=True,
)

webhook_rejections = Table(
    "webhook_rejections",
    metadata,
    Column("practice_slug", String(SLUG), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "reason"),
)
