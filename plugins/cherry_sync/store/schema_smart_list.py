"""Tables for: Smart-list membership pushed to the CRM. Defined on the shared `metadata`; created by
migration 0002_smart_list (which also adds `cherry_patients.increase_eligible`).

- `smart_list_contacts`: per (practice, CRM contact), the segment tags the product applied there. `tags` holds the
  tags the CRM confirmed, `pending` the ones sent (or about to be) whose outcome is unknown: they are recorded
  before the request goes out, so a task killed between the CRM's answer and the store's commit still knows a tag
  may be on the contact. Only tags listed here are ever removed: a tag a person added is never touched.
  Both are sets in one canonical text form, every tag followed by a comma, sorted ("cherry-active,cherry-patient,";
  tags cannot contain commas): one row per contact lets the membership diff join ~10k rows per 10k patients
  instead of one row per (contact, tag), about 2.5x faster on PostgreSQL.
- `smart_list_state`: per practice, when the CRM's custom fields and tags were last verified against the store.
"""

from __future__ import annotations

from sqlalchemy import Column, PrimaryKeyConstraint, String, Table, Text

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import EXTERNAL_ID, SLUG, _practice_fk, metadata

smart_list_contacts = Table(
    "smart_list_contacts",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("contact_id", String(EXTERNAL_ID), nullable=False),
    # The member the tags are for (the smallest patient id when several patients share the contact).
    Column("patient_id", String(EXTERNAL_ID), nullable=False),
    Column("tags", Text, nullable=False),
    Column("pending", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "contact_id"),
)

smart_list_state = Table(
    "smart_list_state",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("verified_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug"),
)
