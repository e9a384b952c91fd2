"""Tables for: the CRM's OAuth tokens. Defined on the shared `metadata`; created by migration 0008_oauth_tokens.

`crm_oauth_tokens` holds one row per token subject: the agency's company token pair (`subject_type` 'company',
`subject_id` the HighLevel companyId) and one minted token per location ('location', the locationId). Token
columns hold Fernet ciphertext only (`cherry_sync.store.oauth_tokens.TokenCipher`); a row whose `access_token` is
NULL exists only as the lock a first mint takes. `generation` counts rotations (+1 each), so a reader can tell that
another worker rotated since it last looked.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Integer, PrimaryKeyConstraint, String, Table, Text

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import EXTERNAL_ID, metadata

SUBJECT_TYPES = ("company", "location")

crm_oauth_tokens = Table(
    "crm_oauth_tokens",
    metadata,
    Column("subject_type", String(16), nullable=False),
    Column("subject_id", String(EXTERNAL_ID), nullable=False),
    Column("access_token", Text, nullable=True),
    Column("refresh_token", Text, nullable=True),  # NULL for location tokens (re-minted, never refreshed)
    Column("expires_at", UTCDateTime, nullable=True),
    Column("generation", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("subject_type", "subject_id"),
    CheckConstraint(f"subject_type IN ({', '.join(repr(s) for s in SUBJECT_TYPES)})", name="subject_type"),
)
