"""`Catalogue`: what one import run learns about each source asset, saved to the store when the run ends.

Every asset met in a run ends as one of: unchanged (its content is already in the location), uploaded (for the
first time, or a new version of a changed asset), rejected (a rule it broke, or the CRM refused its bytes), or
gone (deleted at its source during the run). The catalogue counts each in the run's summary and keeps a
`MediaAsset` row per asset seen, the rejections, and the assets now fine. `record` saves them, retires the
assets that left a listed source (their CRM copies stay: practices may be using them) and resolves the
rejections of assets now fine or gone. Every method runs in the run's own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from cherry_sync.media.errors import AssetRejected
from cherry_sync.media.sources import SourceAsset
from cherry_sync.media.summary import MediaSummary
from cherry_sync.store import Rejection, SyncStore
from cherry_sync.store.media_library import MediaAsset, MediaUpload

log = logging.getLogger(__name__)

ENTITY = "asset"  # rejected_records.entity of the media import's rejections


class Catalogue:
    """One practice's source assets as this run found them, over the catalogue `known` from earlier runs."""

    def __init__(
        self,
        *,
        slug: str,
        store: SyncStore,
        summary: MediaSummary,
        known: dict[str, MediaAsset],
        ledger: Mapping[str, MediaUpload],
    ) -> None:
        self.slug = slug
        self.store = store
        self.summary = summary
        self.known = known
        self.ledger = ledger  # the reconciler's, read to tell a new version from a first upload
        self.seen: dict[str, MediaAsset] = {}
        self.rejections: dict[str, Rejection] = {}
        self.fine: set[str] = set()
        self.refused: dict[str, str] = {}  # asset key -> sha256 the CRM refused in this run

    def reject(self, key: str, why: AssetRejected, asset: SourceAsset | None = None) -> None:
        """The asset broke a rule (`asset` None: a listing entry too malformed to catalogue)."""
        s = self.summary
        s.rejected += 1
        s.rejects_by_reason[why.reason_code] += 1
        self.rejections[key] = Rejection(ENTITY, key, why.stage, why.reason_code, why.message)
        self.fine.discard(key)
        log.warning("practice %s: asset rejected (%s): %s", self.slug, why.reason_code, why.message)
        if asset is not None:
            self._catalogue(asset, asset.sha256)

    def refuse(self, asset: SourceAsset, sha: str, why: AssetRejected) -> None:
        """The CRM refused these bytes (in this run or before): rejected, and not offered again until they change."""
        self.refused[asset.key] = sha
        self.reject(asset.key, why, asset)

    def unchanged(self, asset: SourceAsset, sha: str) -> None:
        """The asset's content is already in the location."""
        self.summary.unchanged += 1
        self.fine.add(asset.key)
        self._catalogue(asset, sha)

    def uploaded(self, asset: SourceAsset, sha: str, size: int) -> None:
        """The CRM confirmed the upload of the asset's content (already in the ledger)."""
        s = self.summary
        previous = self.known.get(asset.key)
        earlier = self.ledger.get(previous.sha256) if previous is not None and previous.sha256 else None
        if earlier is not None and earlier.confirmed and earlier.sha256 != sha:
            s.new_versions += 1  # an earlier version of this asset is in the CRM
        else:
            s.uploaded += 1
        s.bytes_uploaded += size
        self.fine.add(asset.key)
        self._catalogue(asset, sha)

    def gone(self, asset: SourceAsset) -> None:
        """Listed, then deleted at the source before its download: not seen, so retired when the run is recorded."""
        self.summary.gone_during_run += 1
        log.info("practice %s: %s was deleted at the source during the run", self.slug, asset.label)

    def record(self, retired: Iterable[str]) -> None:
        """Save the run's rows, retire the `retired` asset keys, resolve the rejections of assets now fine or gone."""
        s = self.summary
        store, slug = self.store, self.slug
        gone = list(retired)
        store.record_rejections(slug, self.rejections.values())
        store.save_media_assets(slug, self.seen.values())
        s.retired = store.retire_media_assets(slug, gone)
        if s.retired:
            log.info("practice %s: %d asset(s) gone from their source; their CRM copies stay", slug, s.retired)
        store.resolve_rejections(slug, ENTITY, sorted((self.fine - set(self.rejections)) | set(gone)))

    def _catalogue(self, asset: SourceAsset, sha: str | None) -> None:
        previous = self.known.get(asset.key)
        refused = self.refused.get(asset.key)
        if refused is None and previous is not None and previous.refused_sha256 and previous.refused_sha256 == sha:
            refused = previous.refused_sha256
        self.seen[asset.key] = MediaAsset(
            asset_key=asset.key,
            source=asset.source,
            source_id=asset.source_id,
            category=asset.category,
            name=asset.name,
            content_type=asset.content_type,
            size_bytes=asset.size,
            sha256=sha,
            fingerprint=asset.fingerprint if sha else None,
            source_updated_at=asset.updated_at,
            refused_sha256=refused,
        )
