"""`Planner`: what to do with each listed asset, decided from its listing, the catalogue and the upload ledger.

Before any download, per asset: a type the media library does not take, over the size limit or empty ->
rejected; content (sha256) already in the location -> unchanged; content the CRM refused before -> rejected
again without a call; in a dry run, the rest whose sha256 is known -> "would upload". So a re-run with no source
change downloads nothing and makes no CRM call, and a renamed asset (same bytes) is not uploaded again. What is
left is downloaded (by the uploader) and judged again from its bytes: their sha256 against the listing, the
checks above on the real size, the bytes against the declared type, and content met earlier in this run. When
the run ends, the assets a listed source no longer has are the ones to retire.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace

from cherry_sync.media import content_types
from cherry_sync.media.catalogue import Catalogue
from cherry_sync.media.errors import DOWNLOAD, UPLOAD, VALIDATE, AssetRejected
from cherry_sync.media.settings import ImportSettings
from cherry_sync.media.sources import Listing, SourceAsset
from cherry_sync.media.summary import MediaSummary
from cherry_sync.reasons import ReasonCode
from cherry_sync.store.media_library import MediaUpload

log = logging.getLogger(__name__)

WOULD_UPLOAD_LIMIT = 500  # entries listed in a dry run's summary (XCom); the count is always complete


class Planner:
    """Decides, asset by asset, whether it is rejected, unchanged, to be uploaded, or (dry run) would be."""

    def __init__(
        self,
        *,
        slug: str,
        settings: ImportSettings,
        summary: MediaSummary,
        catalogue: Catalogue,
        ledger: Mapping[str, MediaUpload],
        dry_run: bool,
    ) -> None:
        self.slug = slug
        self.settings = settings
        self.summary = summary
        self.catalogue = catalogue
        self.ledger = ledger  # the reconciler's: uploads confirmed by now, this run's included
        self.dry_run = dry_run
        self._would_upload_shas: set[str | None] = set()

    def plan(self, listings: Iterable[Listing]) -> list[SourceAsset]:
        """Every source's listing -> the assets to download, in (category, name) order; the rest are settled here."""
        assets: list[SourceAsset] = []
        for listing in listings:
            self.summary.listed[listing.source] = len(listing.assets) + len(listing.rejected)
            for key, why in listing.rejected:
                self.catalogue.reject(key, why)
            assets.extend(listing.assets)
        assets.sort(key=lambda a: (a.category, a.name, a.key))
        return [asset for asset in assets if self._to_download(asset)]

    def judge(self, asset: SourceAsset, content: bytes) -> tuple[SourceAsset, bytes] | None:
        """The downloaded asset (with its sha256 and size) and its bytes, when they are to be uploaded."""
        sha = hashlib.sha256(content).hexdigest()
        if asset.sha256 and asset.sha256 != sha:
            why = AssetRejected(
                ReasonCode.CHECKSUM_MISMATCH, DOWNLOAD, "the downloaded bytes do not match the listed sha256"
            )
            self.catalogue.reject(asset.key, why, asset)
            return None
        asset = replace(asset, sha256=sha, size=len(content))
        why = self._check_content(asset, content)
        if why is not None:
            self.catalogue.reject(asset.key, why, asset)
            return None
        if self.settled_by_content(asset, sha):
            return None
        if self.dry_run:
            self._would_upload(asset)
            return None
        return asset, content

    def settled_by_content(self, asset: SourceAsset, sha: str) -> bool:
        """Content already in the location (unchanged), or refused by the CRM before: nothing to upload."""
        upload = self.ledger.get(sha)
        if upload is not None and upload.confirmed:
            self.catalogue.unchanged(asset, sha)
            return True
        previous = self.catalogue.known.get(asset.key)
        if previous is not None and previous.refused_sha256 == sha:
            why = AssetRejected(
                ReasonCode.CRM_REJECTED,
                UPLOAD,
                f"{asset.label}: the CRM refused these bytes before; not sent again until changed",
            )
            self.catalogue.refuse(asset, sha, why)
            return True
        return False

    def to_retire(self, listed_sources: set[str]) -> list[str]:
        """Catalogued assets of a source listed in this run that the run did not see (once the run is over)."""
        seen = self.catalogue.seen
        return [
            key
            for key, asset in self.catalogue.known.items()
            if asset.source in listed_sources and asset.retired_at is None and key not in seen
        ]

    def _to_download(self, asset: SourceAsset) -> bool:
        """Decide from the listing alone; True when the asset must be downloaded."""
        why = self._check_listing(asset)
        if why is not None:
            self.catalogue.reject(asset.key, why, asset)
            return False
        if asset.sha256:
            if self.settled_by_content(asset, asset.sha256):
                return False
            if self.dry_run:  # judged by the listed (or remembered) hash: no download
                self._would_upload(asset)
                return False
        return True

    def _check_listing(self, asset: SourceAsset) -> AssetRejected | None:
        if not content_types.is_supported(asset.content_type):
            return AssetRejected(
                ReasonCode.UNSUPPORTED_TYPE,
                VALIDATE,
                f"{asset.label}: {asset.content_type} is not a type the media library takes",
            )
        if asset.size is not None and asset.size > self.settings.max_bytes:
            limit = content_types.megabytes(self.settings.max_bytes)
            return AssetRejected(
                ReasonCode.TOO_LARGE,
                VALIDATE,
                f"{asset.label} is {content_types.megabytes(asset.size)}, over the {limit} limit",
            )
        if asset.size == 0:
            return AssetRejected(ReasonCode.EMPTY_FILE, VALIDATE, f"{asset.label} is empty")
        return None

    def _check_content(self, asset: SourceAsset, content: bytes) -> AssetRejected | None:
        why = self._check_listing(asset)  # the real size, now that the bytes are here
        if why is not None:
            return why
        if not content_types.looks_like(asset.content_type, content):
            return AssetRejected(
                ReasonCode.TYPE_MISMATCH, VALIDATE, f"{asset.label}: the bytes are not {asset.content_type}"
            )
        return None

    def _would_upload(self, asset: SourceAsset) -> None:
        s = self.summary
        if asset.sha256 in self._would_upload_shas:  # the same bytes twice: one upload
            s.unchanged += 1
            return
        self._would_upload_shas.add(asset.sha256)
        s.would_upload_count += 1
        if len(s.would_upload) < WOULD_UPLOAD_LIMIT:
            s.would_upload.append({"category": asset.category, "name": asset.name, "size": asset.size})
        log.info("practice %s: would upload %s (%s)", self.slug, asset.label, content_types.human_size(asset.size))
