"""One practice's media import: source assets -> the CRM's `Cherry/<category>` folders, each content once.

Plain Python over the CRM hook, the asset sources and the store (no Airflow), in this order:

1. List every source completely (Cherry's marketing assets; the asset folder when one is configured).
2. Settle what an earlier run left open (not in dry runs): uploads sent but never confirmed are looked up by name
   in their folder (found: recorded; not found: forgotten, uploaded again below), and folders flagged after an
   upload with an unknown outcome are swept for a late-landing duplicate of one of our files.
3. Per asset, from the listing alone: a type the media library does not take, over 25 MB or empty -> rejected;
   content (sha256) already in the location -> unchanged, nothing downloaded. So a re-run with no source change
   reads the listings and makes no CRM call at all, and a renamed asset (same bytes) is not uploaded again.
4. The rest is downloaded (streamed, capped at 25 MB; up to `prefetch` downloads run ahead of the uploads on one
   worker thread), checked (sha256 against the listing, bytes against the declared type), and uploaded into
   `Cherry/<category>` as `<stem>-<sha256[:8]>.<ext>`: a name unique in its folder for its content, which is what
   the hook's reconcile-before-repeat looks for. The ledger row is written before the upload is sent and
   confirmed as soon as the CRM answers, so a task killed at any point uploads nothing twice.
5. Record rejections (entity "asset"), resolve those of assets now fine or gone, update the catalogue, and
   retire assets that left a listed source (their CRM copies stay: practices may be using them).

A changed asset (new bytes, new sha256) is uploaded as a new file next to the old one. A dry run makes no CRM call
and no store write; it lists what would be uploaded (Cherry assets are judged by their listed sha256, without a
download; folder files are read to hash them).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from cherry_sync.hooks import errors as api_errors
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.media import content_types
from cherry_sync.media.errors import (
    CHECKSUM_MISMATCH,
    CRM_REJECTED,
    DOWNLOAD,
    EMPTY_FILE,
    TOO_LARGE,
    TYPE_MISMATCH,
    UNSUPPORTED_TYPE,
    UPLOAD,
    VALIDATE,
    AssetGone,
    AssetRejected,
)
from cherry_sync.media.folders import MediaFolders
from cherry_sync.media.sources import Listing, SourceAsset
from cherry_sync.store import Rejection, SyncStore
from cherry_sync.store.media_library import MediaAsset, MediaUpload

if TYPE_CHECKING:
    from cherry_sync.sync.practice_runs import PracticeContext

log = logging.getLogger(__name__)

UPLOAD_OP = "POST /medias/upload-file"
ENTITY = "asset"
WOULD_UPLOAD_LIMIT = 500  # entries listed in a dry run's summary (XCom); the count is always complete
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


class AssetSource(Protocol):
    name: str

    def list_assets(self, known: dict[str, MediaAsset]) -> Listing: ...

    def read(self, asset: SourceAsset, max_bytes: int) -> bytes: ...


@dataclass(frozen=True)
class ImportSettings:
    """Limits and patience. `settle_seconds` None: the CRM hook's read timeout (see AesthetixCrmHook._look_until)."""

    max_bytes: int = content_types.MAX_UPLOAD_BYTES
    settle_seconds: float | None = None
    recheck_window: timedelta = timedelta(hours=1)  # how long a folder is swept after an unknown upload outcome
    prefetch: int = 2  # downloads running ahead of the uploads (each held in memory, at most max_bytes)


@dataclass
class MediaSummary:
    """What one practice's import did; `as_dict()` is JSON-safe (asset names, counts, opaque ids)."""

    slug: str
    dry_run: bool
    listed: Counter = field(default_factory=Counter)  # per source
    uploaded: int = 0  # assets uploaded for the first time
    new_versions: int = 0  # changed assets uploaded again (new bytes)
    unchanged: int = 0  # content already in the location (re-runs, renames, the same bytes twice)
    rejected: int = 0
    rejects_by_reason: Counter = field(default_factory=Counter)
    retired: int = 0  # gone from their source since the last run (kept in the CRM)
    gone_during_run: int = 0  # listed, then deleted before the download
    recovered: int = 0  # unconfirmed uploads of an earlier run, found in the CRM
    duplicates_removed: int = 0  # late-landing copies of our own files, deleted
    folders_created: int = 0
    folders_found: int = 0
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0
    would_upload: list[dict[str, Any]] = field(default_factory=list)
    would_upload_count: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)

    @property
    def crm_calls(self) -> int:
        return sum(n for op, n in self.api_calls.items() if op.startswith("crm "))

    def as_dict(self) -> dict[str, Any]:
        return {
            "practice": self.slug,
            "kind": "media_import",
            "dry_run": self.dry_run,
            "assets": {
                "listed": sum(self.listed.values()),
                "listed_by_source": dict(sorted(self.listed.items())),
                "uploaded": self.uploaded,
                "new_versions": self.new_versions,
                "unchanged": self.unchanged,
                "rejected": self.rejected,
                "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())),
                "retired": self.retired,
                "gone_during_run": self.gone_during_run,
                "recovered": self.recovered,
                "duplicates_removed": self.duplicates_removed,
            },
            "folders": {"created": self.folders_created, "found": self.folders_found},
            "bytes": {"downloaded": self.bytes_downloaded, "uploaded": self.bytes_uploaded},
            "would_upload": self.would_upload,
            "would_upload_count": self.would_upload_count,
            "api_calls": dict(sorted(self.api_calls.items())),
            "crm_calls": self.crm_calls,
        }


def upload_name(name: str, sha256: str, content_type: str) -> str:
    """'Spring Refresh - Post.png' + sha -> 'Spring Refresh - Post-1a2b3c4d.png' (unique in its folder per content)."""
    stem, ext = content_types.split_name(name, content_type)
    stem = " ".join(_UNSAFE_NAME.sub(" ", stem).split())[:200].strip(" .") or "asset"
    return f"{stem}-{sha256[:8]}.{ext}"


def prefetched(items: Sequence[Any], fetch: Callable[[Any], Any], depth: int) -> Iterator[tuple[Any, Future]]:
    """(item, future of fetch(item)) in order, with up to `depth` fetches running ahead on one worker thread."""
    if depth <= 0:
        for item in items:
            future: Future = Future()
            try:
                future.set_result(fetch(item))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            yield item, future
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-fetch")
    try:
        queue: deque[tuple[Any, Future]] = deque()
        pending = iter(items)
        for item in itertools.islice(pending, depth + 1):
            queue.append((item, pool.submit(fetch, item)))
        while queue:
            item, future = queue.popleft()
            yield item, future
            future.cancel()
            for nxt in itertools.islice(pending, 1):
                queue.append((nxt, pool.submit(fetch, nxt)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
        self.ledger: dict[str, MediaUpload] = {}
        self.folders: MediaFolders | None = None
        self._known: dict[str, MediaAsset] = {}
        self._seen: dict[str, MediaAsset] = {}
        self._rejections: dict[str, Rejection] = {}
        self._fine: set[str] = set()
        self._refused: dict[str, str] = {}  # asset key -> sha256 the CRM refused in this run
        self._flagged: set[str] = set()  # folders with an unknown upload outcome in this run
        self._would_upload_shas: set[str | None] = set()  # dry runs

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> MediaSummary:
        s = self.summary
        self._known = self.store.media_assets(self.slug)
        listings = [source.list_assets(self._known) for source in self.sources.values()]
        self.ledger = self.store.media_uploads(self.slug, self.location_id)
        if not self.dry_run:
            self.folders = MediaFolders(self.crm, self.store, self.slug, settle_seconds=self.settle_seconds)
            self._recover_unconfirmed()
            self._sweep(self._flagged_earlier(), clear=True)

        assets: list[SourceAsset] = []
        for listing in listings:
            s.listed[listing.source] = len(listing.assets) + len(listing.rejected)
            for key, why in listing.rejected:
                self._reject(key, why)
            assets.extend(listing.assets)
        assets.sort(key=lambda a: (a.category, a.name, a.key))

        to_fetch = [asset for asset in assets if self._plan(asset)]
        cap = self.settings.max_bytes
        fetch = lambda asset: self.sources[asset.source].read(asset, cap)  # noqa: E731
        for asset, future in prefetched(to_fetch, fetch, self.settings.prefetch):
            self._process(asset, future)

        if not self.dry_run:
            self._sweep(sorted(self._flagged), clear=False)
            self._record({listing.source for listing in listings})
        s.api_calls = self._api_calls()
        self._log_summary()
        return s

    # -- per asset ---------------------------------------------------------------------------------

    def _plan(self, asset: SourceAsset) -> bool:
        """Decide from the listing alone; True when the asset must be downloaded."""
        why = self._check_listing(asset)
        if why is not None:
            self._reject(asset.key, why, asset)
            return False
        if asset.sha256:
            if self._settled_by_content(asset, asset.sha256):
                return False
            if self.dry_run:  # judged by the listed (or remembered) hash: no download
                self._would_upload(asset)
                return False
        return True

    def _process(self, asset: SourceAsset, future: Future) -> None:
        s = self.summary
        try:
            content = future.result()
        except AssetGone:
            s.gone_during_run += 1
            log.info("practice %s: %s was deleted at the source during the run", self.slug, asset.label)
            return
        except AssetRejected as why:
            self._reject(asset.key, why, asset)
            return
        s.bytes_downloaded += len(content)
        sha = hashlib.sha256(content).hexdigest()
        if asset.sha256 and asset.sha256 != sha:
            why = AssetRejected(CHECKSUM_MISMATCH, DOWNLOAD, "the downloaded bytes do not match the listed sha256")
            self._reject(asset.key, why, asset)
            return
        asset = replace(asset, sha256=sha, size=len(content))
        why = self._check_content(asset, content)
        if why is not None:
            self._reject(asset.key, why, asset)
            return
        if self._settled_by_content(asset, sha):
            return
        if self.dry_run:
            self._would_upload(asset)
            return
        self._upload(asset, content)

    def _check_listing(self, asset: SourceAsset) -> AssetRejected | None:
        if not content_types.is_supported(asset.content_type):
            return AssetRejected(
                UNSUPPORTED_TYPE, VALIDATE, f"{asset.label}: {asset.content_type} is not a type the media library takes"
            )
        if asset.size is not None and asset.size > self.settings.max_bytes:
            limit = content_types.megabytes(self.settings.max_bytes)
            return AssetRejected(
                TOO_LARGE, VALIDATE, f"{asset.label} is {content_types.megabytes(asset.size)}, over the {limit} limit"
            )
        if asset.size == 0:
            return AssetRejected(EMPTY_FILE, VALIDATE, f"{asset.label} is empty")
        return None

    def _check_content(self, asset: SourceAsset, content: bytes) -> AssetRejected | None:
        why = self._check_listing(asset)  # the real size, now that the bytes are here
        if why is not None:
            return why
        if not content_types.looks_like(asset.content_type, content):
            return AssetRejected(TYPE_MISMATCH, VALIDATE, f"{asset.label}: the bytes are not {asset.content_type}")
        return None

    def _settled_by_content(self, asset: SourceAsset, sha: str) -> bool:
        """Content already in the location (unchanged), or refused by the CRM before: nothing to upload."""
        upload = self.ledger.get(sha)
        if upload is not None and upload.confirmed:
            self.summary.unchanged += 1
            self._fine.add(asset.key)
            self._catalogue(asset, sha)
            return True
        previous = self._known.get(asset.key)
        if previous is not None and previous.refused_sha256 == sha:
            why = AssetRejected(
                CRM_REJECTED, UPLOAD, f"{asset.label}: the CRM refused these bytes before; not sent again until changed"
            )
            self._reject(asset.key, why, asset)
            self._refused[asset.key] = sha
            return True
        return False

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

    # -- uploads -----------------------------------------------------------------------------------

    def _upload(self, asset: SourceAsset, content: bytes) -> None:
        assert self.folders is not None and asset.sha256
        s = self.summary
        sha, ctype = asset.sha256, content_types.normalise(asset.content_type)
        name = upload_name(asset.name, sha, ctype)
        for attempt in (1, 2):
            folder_id = self.folders.folder_for(asset.category)
            intent = MediaUpload(sha, asset.key, asset.category, folder_id, name, ctype, len(content))
            self.store.begin_media_upload(self.slug, self.location_id, intent)
            before = self.crm.calls[UPLOAD_OP]
            try:
                result = self.crm.upload_file(
                    name=name,
                    content=content,
                    content_type=ctype,
                    parent_id=folder_id,
                    settle_seconds=self.settle_seconds,
                )
            except api_errors.NotFoundError:
                # The folder was deleted in the CRM since its id was stored: find or create it again, once.
                self.store.drop_pending_media_upload(self.slug, self.location_id, sha)
                if attempt == 2:
                    raise
                log.warning("practice %s: folder %s is gone from the CRM; looking again", self.slug, asset.category)
                self.folders.forget()
                continue
            except api_errors.ValidationError as exc:
                self.store.drop_pending_media_upload(self.slug, self.location_id, sha)
                self._refused[asset.key] = sha
                self._reject(asset.key, AssetRejected(CRM_REJECTED, UPLOAD, f"{asset.label}: {exc}"), asset)
                return
            finally:
                if self.crm.calls[UPLOAD_OP] - before > 1:
                    self._flag(folder_id)
            file_id = str(result.get("fileId") or result.get("id") or result.get("_id") or "")
            if not file_id:
                raise api_errors.MalformedResponseError(UPLOAD_OP, "no fileId in the response")
            self.store.confirm_media_upload(self.slug, self.location_id, sha, file_id)
            self.ledger[sha] = replace(intent, crm_file_id=file_id)
            break
        previous = self._known.get(asset.key)
        earlier = self.ledger.get(previous.sha256) if previous is not None and previous.sha256 else None
        if earlier is not None and earlier.confirmed and earlier.sha256 != sha:
            s.new_versions += 1  # an earlier version of this asset is in the CRM
        else:
            s.uploaded += 1
        s.bytes_uploaded += len(content)
        self._fine.add(asset.key)
        self._catalogue(asset, sha)
        log.info(
            "practice %s: uploaded %s (%s) as %s", self.slug, asset.label, content_types.human_size(len(content)), name
        )

    def _flag(self, folder_id: str) -> None:
        if folder_id not in self._flagged:
            self._flagged.add(folder_id)
            self.store.flag_media_folder_recheck(self.slug, self.location_id, [folder_id], self.clock())

    # -- what earlier runs left open ---------------------------------------------------------------

    def _recover_unconfirmed(self) -> None:
        """Uploads sent and never confirmed (the task died, or gave up): in the CRM -> recorded, else forgotten."""
        by_folder: dict[str, list[MediaUpload]] = defaultdict(list)
        for upload in self.ledger.values():
            if not upload.confirmed:
                by_folder[upload.crm_folder_id].append(upload)
        for folder_id, uploads in sorted(by_folder.items()):
            first_by_name = self._files_by_name(folder_id)
            for upload in uploads:
                ids = first_by_name.get(upload.file_name)
                if ids:
                    self.store.confirm_media_upload(self.slug, self.location_id, upload.sha256, ids[0])
                    self.ledger[upload.sha256] = replace(upload, crm_file_id=ids[0])
                    self.summary.recovered += 1
                else:
                    self.store.drop_pending_media_upload(self.slug, self.location_id, upload.sha256)
                    del self.ledger[upload.sha256]
            self._flag(folder_id)  # a lost upload may still land: keep an eye on the folder for a while
        if self.summary.recovered:
            log.info("practice %s: %d earlier upload(s) found in the CRM", self.slug, self.summary.recovered)

    def _flagged_earlier(self) -> list[str]:
        assert self.folders is not None
        return sorted(f.crm_folder_id for f in self.folders.known.values() if f.recheck_since is not None)

    def _sweep(self, folder_ids: Iterable[str], *, clear: bool) -> None:
        """Delete late-landing copies of our own files (same name as a ledger file, another id) in these folders."""
        assert self.folders is not None
        now = self.clock()
        window = self.settings.recheck_window
        by_id = {f.crm_folder_id: f for f in self.folders.known.values()}
        for folder_id in folder_ids:
            ours = {u.file_name: u for u in self.ledger.values() if u.confirmed and u.crm_folder_id == folder_id}
            for name, ids in self._files_by_name(folder_id).items() if ours else ():
                upload = ours.get(name)
                if upload is None:
                    continue
                keep = upload.crm_file_id if upload.crm_file_id in ids else ids[0]
                if keep != upload.crm_file_id:  # ours was deleted in the CRM; a copy of the same bytes remains
                    self.store.confirm_media_upload(self.slug, self.location_id, upload.sha256, keep)
                    self.ledger[upload.sha256] = replace(upload, crm_file_id=keep)
                for extra in ids:
                    if extra != keep and self.crm.delete_media(extra):
                        self.summary.duplicates_removed += 1
                        log.warning("practice %s: removed a duplicate of %s (a late-landing upload)", self.slug, name)
            flagged = by_id.get(folder_id)
            if clear and flagged is not None and flagged.recheck_since and now - flagged.recheck_since >= window:
                self.store.clear_media_folder_recheck(
                    self.slug, self.location_id, folder_id, flagged_before=now - window
                )

    def _files_by_name(self, folder_id: str) -> dict[str, list[str]]:
        """File ids per name in one folder, oldest first ({} when the folder is gone)."""
        try:
            files = self.crm.list_media(kind="file", parent_id=folder_id)
        except api_errors.NotFoundError:
            return {}
        out: dict[str, list[str]] = defaultdict(list)
        for item in files:
            file_id = str(item.get("id") or item.get("_id") or "")
            if file_id:
                out[str(item.get("name"))].append(file_id)
        return out

    # -- bookkeeping -------------------------------------------------------------------------------

    def _reject(self, key: str, why: AssetRejected, asset: SourceAsset | None = None) -> None:
        s = self.summary
        s.rejected += 1
        s.rejects_by_reason[why.reason_code] += 1
        self._rejections[key] = Rejection(ENTITY, key, why.stage, why.reason_code, why.message)
        self._fine.discard(key)
        log.warning("practice %s: asset rejected (%s): %s", self.slug, why.reason_code, why.message)
        if asset is not None:
            self._catalogue(asset, asset.sha256)

    def _catalogue(self, asset: SourceAsset, sha: str | None) -> None:
        previous = self._known.get(asset.key)
        refused = self._refused.get(asset.key)
        if refused is None and previous is not None and previous.refused_sha256 and previous.refused_sha256 == sha:
            refused = previous.refused_sha256
        self._seen[asset.key] = MediaAsset(
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

    def _record(self, listed_sources: set[str]) -> None:
        s = self.summary
        store, slug = self.store, self.slug
        store.record_rejections(slug, self._rejections.values())
        store.save_media_assets(slug, self._seen.values())
        gone = [
            key
            for key, asset in self._known.items()
            if asset.source in listed_sources and asset.retired_at is None and key not in self._seen
        ]
        s.retired = store.retire_media_assets(slug, gone)
        if s.retired:
            log.info("practice %s: %d asset(s) gone from their source; their CRM copies stay", slug, s.retired)
        store.resolve_rejections(slug, ENTITY, sorted((self._fine - set(self._rejections)) | set(gone)))
        s.folders_created = self.folders.created if self.folders else 0
        s.folders_found = self.folders.found if self.folders else 0

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
