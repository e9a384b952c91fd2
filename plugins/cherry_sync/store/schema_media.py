"""Tables for: Media-library folders and the asset upload ledger. Defined on the shared `metadata`; created
by migration 0003_media.

- `media_folders`: the CRM folders the import put files in (`Cherry`, `Cherry/<category>`), per practice and CRM
  location, found by name or created once. `recheck_since` set means an upload into that folder had an unknown
  outcome at that time, so a write that landed late may have left a duplicate: the folder is swept until then is
  long enough ago.
- `media_uploads`: the upload ledger, one row per (practice, CRM location, content hash): an asset's bytes are
  uploaded once per location whatever it is called. `crm_file_id` NULL means the upload was sent (or was about to
  be) and never confirmed: the next run looks for the file by its name before uploading anything again.
- `media_assets`: the source catalogue, one row per asset per practice (a Cherry asset id, or a file of the asset
  folder), with the content hash last seen, when it was last listed and when it disappeared from its source
  (`retired_at`: the CRM copy stays). For folder files `fingerprint` (size + modification stamp) lets a run skip
  re-reading a file whose hash it already knows. `refused_sha256` is content the CRM refused (4xx), not offered
  again until the asset changes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, PrimaryKeyConstraint, String, Table

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import EXTERNAL_ID, SLUG, _practice_fk, metadata

SHA256 = 64
FOLDER_PATH = 300  # "Cherry/<category>"
NAME = 300  # asset and file names (Cherry caps asset names at 300)
CATEGORY = 200
CONTENT_TYPE = 100
SOURCE_ID = 1024  # a Cherry asset id, or a file's path inside the asset folder
FINGERPRINT = 200

media_folders = Table(
    "media_folders",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("crm_location_id", String(EXTERNAL_ID), nullable=False),
    Column("path", String(FOLDER_PATH), nullable=False),
    Column("crm_folder_id", String(EXTERNAL_ID), nullable=False),
    Column("parent_folder_id", String(EXTERNAL_ID), nullable=True),
    Column("created", Boolean, nullable=False),  # created by the import (else found in the CRM)
    Column("recheck_since", UTCDateTime, nullable=True),
    Column("recorded_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "crm_location_id", "path"),
)

media_uploads = Table(
    "media_uploads",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("crm_location_id", String(EXTERNAL_ID), nullable=False),
    Column("sha256", String(SHA256), nullable=False),
    Column("asset_key", String(EXTERNAL_ID), nullable=False),  # the asset first uploaded with these bytes
    Column("category", String(CATEGORY), nullable=False),
    Column("crm_folder_id", String(EXTERNAL_ID), nullable=False),
    Column("file_name", String(NAME), nullable=False),
    Column("content_type", String(CONTENT_TYPE), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("crm_file_id", String(EXTERNAL_ID), nullable=True),  # NULL: sent, not (yet) confirmed
    Column("requested_at", UTCDateTime, nullable=False),
    Column("uploaded_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("practice_slug", "crm_location_id", "sha256"),
    # Sweeps and pending-upload checks read one folder's files.
    Index(None, "practice_slug", "crm_location_id", "crm_folder_id"),
)

media_assets = Table(
    "media_assets",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("asset_key", String(EXTERNAL_ID), nullable=False),
    Column("source", String(16), nullable=False),  # cherry | folder
    Column("source_id", String(SOURCE_ID), nullable=False),
    Column("category", String(CATEGORY), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("content_type", String(CONTENT_TYPE), nullable=False),
    Column("size_bytes", BigInteger, nullable=True),
    Column("sha256", String(SHA256), nullable=True),
    Column("fingerprint", String(FINGERPRINT), nullable=True),
    Column("source_updated_at", UTCDateTime, nullable=True),
    Column("refused_sha256", String(SHA256), nullable=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("practice_slug", "asset_key"),
)
