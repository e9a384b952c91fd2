"""Tables for: threshold alerts. Defined on the shared `metadata`; created by migration 0010_alert_states.

`alert_states` holds one row per (practice, DAG, alert kind): whether the alert is raised or ok, the value the last
evaluated run measured and the threshold it was held against, since when the state holds, and when the operators
were told of it (`notified_at` NULL: the notice of the current state is still owed). No patient data.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Float, PrimaryKeyConstraint, String, Table

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import CONN_ID, SLUG, metadata

ALERT_KINDS = ("rejection_rate", "crm_failure_rate", "silent")
ALERT_STATES = ("raised", "ok")

alert_states = Table(
    "alert_states",
    metadata,
    # No foreign key, like the run ledger the states are measured from: a run is measured even for a practice the
    # mirror does not hold (yet).
    Column("practice_slug", String(SLUG), nullable=False),
    Column("dag_id", String(CONN_ID), nullable=False),
    Column("alert_kind", String(32), nullable=False),
    Column("state", String(8), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("last_run_id", String(CONN_ID), nullable=False),
    Column("notified_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("practice_slug", "dag_id", "alert_kind"),
    CheckConstraint(f"alert_kind IN ({', '.join(repr(k) for k in ALERT_KINDS)})", name="alert_kind"),
    CheckConstraint(f"state IN ({', '.join(repr(s) for s in ALERT_STATES)})", name="state"),
)
