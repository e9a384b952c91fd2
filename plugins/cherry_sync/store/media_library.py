"""Queries for: Media-library folders and the asset upload ledger.

Three tables (store/schema_media.py): the CRM folders of each practice's location, the upload ledger keyed by
content hash, and the catalogue of source assets. The row types live here: nothing outside the media import
uses them. Every method runs in its own transaction and is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from cherry_sync.store.base import StoreBase, chunked
from cherry_sync.store.schema_media import media_assets, media_folders, media_uploads


@dataclass(frozen=True, slots=True)
class MediaFolder:
    """A CRM media folder the import uses (`path` is "Cherry" or "Cherry/<category>")."""

    path: str
    crm_folder_id: str
    parent_folder_id: str | None
    created: bool
    recheck_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class MediaUpload:
    """One ledger row: these bytes (sha256) in this location's folder, under this name. `crm_file_id` None: the
    upload was sent (or about to be) and is not confirmed."""

    sha256: str
    asset_key: str
    category: str
    crm_folder_id: str
    file_name: str
    content_type: str
    size_bytes: int
    crm_file_id: str | None = None
    requested_at: datetime | None = None
    uploaded_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        return self.crm_file_id is not None


@dataclass(frozen=True, slots=True)
class MediaAsset:
    """A source asset as catalogued (what was listed, its content hash when known, whether it is gone)."""

    asset_key: str
    source: str
    source_id: str
    category: str
    name: str
    content_type: str
    size_bytes: int | None = None
    sha256: str | None = None
    fingerprint: str | None = None
    source_updated_at: datetime | None = None
    refused_sha256: str | None = None
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    retired_at: datetime | None = None


_ASSET_FIELDS = (
    "source",
    "source_id",
    "category",
    "name",
    "content_type",
    "size_bytes",
    "sha256",
    "fingerprint",
    "source_updated_at",
    "refused_sha256",
)


class MediaQueries(StoreBase):
    """Media-library folders and the asset upload ledger: reads and writes, in batches."""

    # -- folders -----------------------------------------------------------------------------------

    def media_folders(self, slug: str, location_id: str) -> dict[str, MediaFolder]:
        """The location's known folders by path."""
        query = select(media_folders).where(
            media_folders.c.practice_slug == slug, media_folders.c.crm_location_id == location_id
        )
        with self.engine.begin() as conn:
            return {
                row.path: MediaFolder(
                    path=row.path,
                    crm_folder_id=row.crm_folder_id,
                    parent_folder_id=row.parent_folder_id,
                    created=row.created,
                    recheck_since=row.recheck_since,
                )
                for row in conn.execute(query)
            }

    def record_media_folder(self, slug: str, location_id: str, folder: MediaFolder) -> None:
        """Remember a folder (found or created); a path recorded again takes the new id."""
        ins = self._insert(media_folders).values(
            practice_slug=slug,
            crm_location_id=location_id,
            path=folder.path,
            crm_folder_id=folder.crm_folder_id,
            parent_folder_id=folder.parent_folder_id,
            created=folder.created,
            recheck_since=folder.recheck_since,
            recorded_at=self._now(),
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[media_folders.c.practice_slug, media_folders.c.crm_location_id, media_folders.c.path],
            set_={
                "crm_folder_id": ins.excluded.crm_folder_id,
                "parent_folder_id": ins.excluded.parent_folder_id,
                "created": ins.excluded.created,
                "recheck_since": ins.excluded.recheck_since,
                "recorded_at": ins.excluded.recorded_at,
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def forget_media_folders(self, slug: str, location_id: str) -> int:
        """Drop the location's folder ids (the CRM no longer has them); the next upload looks them up again."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(media_folders).where(
                    media_folders.c.practice_slug == slug, media_folders.c.crm_location_id == location_id
                )
            ).rowcount

    def flag_media_folder_recheck(self, slug: str, location_id: str, folder_ids: Iterable[str], since: datetime) -> int:
        """Mark folders whose uploads had an unknown outcome at `since`: sweep them for duplicates until later."""
        ids = sorted(set(folder_ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(
                update(media_folders)
                .where(
                    media_folders.c.practice_slug == slug,
                    media_folders.c.crm_location_id == location_id,
                    media_folders.c.crm_folder_id.in_(ids),
                )
                .values(recheck_since=since)
            ).rowcount

    def clear_media_folder_recheck(
        self, slug: str, location_id: str, folder_id: str, *, flagged_before: datetime
    ) -> int:
        """Stop sweeping a folder, unless it was flagged again at or after `flagged_before`."""
        with self.engine.begin() as conn:
            return conn.execute(
                update(media_folders)
                .where(
                    media_folders.c.practice_slug == slug,
                    media_folders.c.crm_location_id == location_id,
                    media_folders.c.crm_folder_id == folder_id,
                    media_folders.c.recheck_since < flagged_before,
                )
                .values(recheck_since=None)
            ).rowcount

    # -- upload ledger -----------------------------------------------------------------------------

    def media_uploads(self, slug: str, location_id: str) -> dict[str, MediaUpload]:
        """Every ledger row of the location (confirmed and pending), by content hash."""
        query = select(media_uploads).where(
            media_uploads.c.practice_slug == slug, media_uploads.c.crm_location_id == location_id
        )
        with self.engine.begin() as conn:
            return {row.sha256: _upload(row) for row in conn.execute(query)}

    def begin_media_upload(self, slug: str, location_id: str, upload: MediaUpload) -> None:
        """Record the intent before the upload is sent (crm_file_id NULL). A confirmed row is never overwritten."""
        now = self._now()
        ins = self._insert(media_uploads).values(
            practice_slug=slug,
            crm_location_id=location_id,
            sha256=upload.sha256,
            asset_key=upload.asset_key,
            category=upload.category,
            crm_folder_id=upload.crm_folder_id,
            file_name=upload.file_name,
            content_type=upload.content_type,
            size_bytes=upload.size_bytes,
            crm_file_id=None,
            requested_at=now,
            uploaded_at=None,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[media_uploads.c.practice_slug, media_uploads.c.crm_location_id, media_uploads.c.sha256],
            set_={
                name: getattr(ins.excluded, name)
                for name in (
                    "asset_key",
                    "category",
                    "crm_folder_id",
                    "file_name",
                    "content_type",
                    "size_bytes",
                    "requested_at",
                )
            },
            where=media_uploads.c.crm_file_id.is_(None),
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def confirm_media_upload(self, slug: str, location_id: str, sha256: str, crm_file_id: str) -> None:
        """The CRM confirmed the upload (or it was found there): the bytes are in the location."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(media_uploads)
                .where(
                    media_uploads.c.practice_slug == slug,
                    media_uploads.c.crm_location_id == location_id,
                    media_uploads.c.sha256 == sha256,
                )
                .values(crm_file_id=crm_file_id, uploaded_at=self._now())
            )
        if result.rowcount == 0:
            raise LookupError("confirm_media_upload without begin_media_upload")

    def drop_pending_media_upload(self, slug: str, location_id: str, sha256: str) -> int:
        """Forget an unconfirmed upload that did not land (it will be uploaded again)."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(media_uploads).where(
                    media_uploads.c.practice_slug == slug,
                    media_uploads.c.crm_location_id == location_id,
                    media_uploads.c.sha256 == sha256,
                    media_uploads.c.crm_file_id.is_(None),
                )
            ).rowcount

    # -- source catalogue --------------------------------------------------------------------------

    def media_assets(self, slug: str) -> dict[str, MediaAsset]:
        """The practice's catalogued assets (retired ones included), by asset key."""
        query = select(media_assets).where(media_assets.c.practice_slug == slug)
        with self.engine.begin() as conn:
            return {
                row.asset_key: MediaAsset(**{k: v for k, v in row._mapping.items() if k != "practice_slug"})
                for row in conn.execute(query)
            }

    def save_media_assets(self, slug: str, assets: Iterable[MediaAsset]) -> int:
        """Upsert assets seen in this run's listing: current values, last seen now, not retired."""
        now = self._now()
        rows = [
            {
                "practice_slug": slug,
                "asset_key": a.asset_key,
                **{name: getattr(a, name) for name in _ASSET_FIELDS},
                "first_seen_at": now,
                "last_seen_at": now,
                "retired_at": None,
            }
            for a in {a.asset_key: a for a in assets}.values()
        ]
        if not rows:
            return 0
        ins = self._insert(media_assets)
        stmt = ins.on_conflict_do_update(
            index_elements=[media_assets.c.practice_slug, media_assets.c.asset_key],
            set_={
                **{name: getattr(ins.excluded, name) for name in _ASSET_FIELDS},
                "last_seen_at": ins.excluded.last_seen_at,
                "retired_at": None,
            },
        )
        with self.engine.begin() as conn:
            for batch in chunked(rows):
                conn.execute(stmt, batch)
        return len(rows)

    def retire_media_assets(self, slug: str, asset_keys: Iterable[str]) -> int:
        """Mark assets gone from their source (their CRM copies stay); already retired ones keep their date."""
        now = self._now()
        retired = 0
        with self.engine.begin() as conn:
            for batch in chunked(sorted(set(asset_keys))):
                retired += conn.execute(
                    update(media_assets)
                    .where(
                        media_assets.c.practice_slug == slug,
                        media_assets.c.asset_key.in_(batch),
                        media_assets.c.retired_at.is_(None),
                    )
                    .values(retired_at=now)
                ).rowcount
        return retired


def _upload(row) -> MediaUpload:
    data = row._mapping
    return MediaUpload(**{k: v for k, v in data.items() if k not in ("practice_slug", "crm_location_id")})
