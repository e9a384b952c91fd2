"""One practice's media import: source assets -> the CRM's `Cherry/<category>` folders, each content once.

Plain Python over the CRM hook, the asset sources and the store (no Airflow). `MediaImporter.run` orchestrates;
each step has its own module:

1. List every source completely (`sources.py`: Cherry's marketing assets; the asset folder when one is
   configured).
2. Settle what an earlier run left open (`reconciler.py`; not in dry runs): uploads sent but never confirmed
   are looked up by name in their folder (found: recorded; not found: forgotten, uploaded again below), and
   folders flagged after an upload with an unknown outcome are swept for a late-landing duplicate of one of our
   files.
3. Plan each asset from the listing alone (`planner.py`): a type the media library does not take, over 25 MB or
   empty -> rejected; content (sha256) already in the location -> unchanged, nothing downloaded.
4. Download, check and upload the rest (`uploader.py`): streamed downloads a little ahead of a write window of
   uploads, each upload's ledger row written before it is sent and confirmed when its answer comes back.
5. Sweep the folders this run flagged (`reconciler.py`), then record the catalogue (`catalogue.py`): rejections
   (entity "asset"), resolved rejections of assets now fine or gone, and retired assets that left a listed
   source (their CRM copies stay: practices may be using them).

A changed asset (new bytes, new sha256) is uploaded as a new file next to the old one. A dry run makes no CRM call
and no store write; it lists what would be uploaded (Cherry assets are judged by their listed sha256, without a
download; folder files are read to hash them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.media import content_types
from cherry_sync.media.catalogue import Catalogue
from cherry_sync.media.folders import MediaFolders
from cherry_sync.media.planner import Planner
from cherry_sync.media.reconciler import Reconciler
from cherry_sync.media.settings import ImportSettings
from cherry_sync.media.summary import MediaSummary
from cherry_sync.media.uploader import AssetSource, Uploader
from cherry_sync.store import SyncStore

if TYPE_CHECKING:
    from cherry_sync.context import PracticeContext

__all__ = ["AssetSource", "ImportSettings", "MediaImporter", "MediaSummary", "import_practice"]

log = logging.getLogger(__name__)


class MediaImporter:
    """Imports one practice's assets into its CRM location. Build one per run; `run()` returns the summary."""

    def __init__(
        self,
        *,
        slug: str,
        store: SyncStore,
        crm: AesthetixCrmHook,
        sources: Sequence[AssetSource],
        settings: ImportSettings | None = None,
        dry_run: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.slug = slug
        self.store = store
        self.crm = crm
        self.sources = {source.name: source for source in sources}
        self.settings = settings or ImportSettings()
        self.dry_run = dry_run
        self.clock = clock or (lambda: datetime.now(UTC))
        self.location_id = crm.location_id
        settle = self.settings.settle_seconds
        self.settle_seconds = crm.retry_settings.read_timeout if settle is None else settle
        self.summary = MediaSummary(slug, dry_run)

    def run(self) -> MediaSummary:
        s, slug, store = self.summary, self.slug, self.store
        known = store.media_assets(slug)
        listings = [source.list_assets(known) for source in self.sources.values()]
        ledger = store.media_uploads(slug, self.location_id)
        folders = None
        if not self.dry_run:
            folders = MediaFolders(self.crm, store, slug, settle_seconds=self.settle_seconds)
        reconciler = Reconciler(
            slug=slug,
            store=store,
            crm=self.crm,
            ledger=ledger,
            folders=folders,
            summary=s,
            recheck_window=self.settings.recheck_window,
            clock=self.clock,
        )
        catalogue = Catalogue(slug=slug, store=store, summary=s, known=known, ledger=ledger)
        planner = Planner(
            slug=slug, settings=self.settings, summary=s, catalogue=catalogue, ledger=ledger, dry_run=self.dry_run
        )
        uploader = Uploader(
            slug=slug,
            crm=self.crm,
            sources=self.sources,
            folders=folders,
            planner=planner,
            catalogue=catalogue,
            reconciler=reconciler,
            settings=self.settings,
            settle_seconds=self.settle_seconds,
            summary=s,
        )

        if not self.dry_run:
            reconciler.settle_earlier_runs()
        uploader.transfer(planner.plan(listings))
        if folders is not None:  # not a dry run
            reconciler.sweep_flagged()
            catalogue.record(planner.to_retire({listing.source for listing in listings}))
            s.folders_created, s.folders_found = folders.created, folders.found
        s.api_calls = self._api_calls()
        self._log_summary()
        return s

    def _api_calls(self) -> dict[str, int]:
        calls = {f"crm {op}": n for op, n in self.crm.calls.items()}
        for source in self.sources.values():
            hook = getattr(source, "cherry", None)
            if hook is not None:
                calls |= {f"cherry {op}": n for op, n in hook.calls.items()}
        return calls

    def _log_summary(self) -> None:
        s = self.summary
        log.info(
            "practice %s media import%s: listed %d, uploaded %d, new versions %d, unchanged %d, rejected %d %s, "
            "retired %d, would upload %d; %s uploaded; %d CRM calls",
            self.slug,
            " (dry run)" if self.dry_run else "",
            sum(s.listed.values()),
            s.uploaded,
            s.new_versions,
            s.unchanged,
            s.rejected,
            dict(s.rejects_by_reason) or "",
            s.retired,
            s.would_upload_count,
            content_types.human_size(s.bytes_uploaded),
            s.crm_calls,
        )


def import_practice(
    ctx: PracticeContext,
    *,
    asset_folder: str | None = None,
    dry_run: bool = False,
    settings: ImportSettings | None = None,
) -> MediaSummary:
    """One practice's import from its Cherry account and, when given, the asset folder (an ObjectStoragePath URI)."""
    from cherry_sync.media.sources import CherryAssetSource, FolderAssetSource

    sources: list[AssetSource] = [CherryAssetSource(ctx.cherry)]
    if asset_folder and asset_folder.strip():
        sources.append(FolderAssetSource(asset_folder.strip()))
    importer = MediaImporter(
        slug=ctx.slug, store=ctx.store, crm=ctx.crm, sources=sources, settings=settings, dry_run=dry_run
    )
    return importer.run()
