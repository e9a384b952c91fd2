"""`Uploader`: downloads the planned assets within a byte budget and uploads them through a write window.

Each asset is downloaded (streamed, capped at the size limit), judged by the planner from its bytes, and
uploaded into `Cherry/<category>` as `<stem>-<sha256[:8]>.<ext>`: a name unique in its folder for its content,
which is what the hook's reconcile-before-repeat looks for. Uploads go through a `WriteWindow` (several in
flight, each paced by the shared limiter); downloads run up to `prefetch` ahead of them on a few threads, within
`buffer_bytes` of listed size, so about window-size + `prefetch` assets are held in memory at most.

The window's and the downloads' threads only send and read; everything else happens in the calling thread: a
category folder is found or created while no upload is out, before the first upload into it; the ledger row is
written (by the reconciler) before an upload is handed to the window and confirmed as soon as its outcome comes
back, so a task killed at any point uploads nothing twice.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from cherry_sync.hooks import errors as api_errors
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.inflight import Job, Outcome, WriteWindow
from cherry_sync.media import content_types
from cherry_sync.media.catalogue import Catalogue
from cherry_sync.media.errors import UPLOAD, AssetGone, AssetRejected
from cherry_sync.media.folders import MediaFolders, folder_path
from cherry_sync.media.planner import Planner
from cherry_sync.media.reconciler import Reconciler
from cherry_sync.media.settings import ImportSettings
from cherry_sync.media.sources import Listing, SourceAsset
from cherry_sync.media.summary import MediaSummary
from cherry_sync.reasons import ReasonCode
from cherry_sync.store.media_library import MediaAsset, MediaUpload

log = logging.getLogger(__name__)

UPLOAD_OP = "POST /medias/upload-file"
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


class AssetSource(Protocol):
    """Where assets come from (`media/sources.py`): a complete listing, and one asset's bytes with a size cap."""

    name: str

    def list_assets(self, known: dict[str, MediaAsset]) -> Listing: ...

    def read(self, asset: SourceAsset, max_bytes: int) -> bytes: ...


def upload_name(name: str, sha256: str, content_type: str) -> str:
    """'Spring Refresh - Post.png' + sha -> 'Spring Refresh - Post-1a2b3c4d.png' (unique in its folder per content)."""
    stem, ext = content_types.split_name(name, content_type)
    stem = " ".join(_UNSAFE_NAME.sub(" ", stem).split())[:200].strip(" .") or "asset"
    return f"{stem}-{sha256[:8]}.{ext}"


@dataclass(frozen=True)
class _Ready:
    """A checked asset and its bytes, to be uploaded (`attempt` 2: its folder was gone at the first)."""

    asset: SourceAsset
    content: bytes
    attempt: int = 1


@dataclass(frozen=True)
class _Upload:
    """One upload handed to the window: its ledger intent (already written) and the bytes to send."""

    asset: SourceAsset
    intent: MediaUpload
    content: bytes
    attempt: int = 1


@dataclass(frozen=True)
class _Sent:
    """What an upload job gave back: the CRM's answer or the error, and how many times the hook sent it."""

    answer: dict | None
    error: Exception | None
    sends: int


class Uploader:
    """Moves one run's planned assets from their sources into the CRM; `transfer` returns when all are settled."""

    def __init__(
        self,
        *,
        slug: str,
        crm: AesthetixCrmHook,
        sources: Mapping[str, AssetSource],
        folders: MediaFolders | None,
        planner: Planner,
        catalogue: Catalogue,
        reconciler: Reconciler,
        settings: ImportSettings,
        settle_seconds: float,
        summary: MediaSummary,
    ) -> None:
        self.slug = slug
        self.crm = crm
        self.sources = sources
        self.folders = folders  # None in a dry run: the planner lets nothing through to upload
        self.planner = planner
        self.catalogue = catalogue
        self.reconciler = reconciler
        self.settings = settings
        self.settle_seconds = settle_seconds
        self.summary = summary
        # Every one of these is read and written in the calling thread only.
        self._window: WriteWindow | None = None
        self._todo: deque[SourceAsset] = deque()  # to download, in listing order
        self._downloads: deque[tuple[SourceAsset, Future]] = deque()  # started, in the same order
        self._ready: deque[_Ready] = deque()  # checked, waiting for their folder (or sent again: it was gone)
        self._sending: dict[str, _Upload] = {}  # sha256 -> upload handed to the window, outcome not recorded
        self._waiting: dict[str, list[SourceAsset]] = defaultdict(list)  # same bytes as an upload in flight
        self._failure: Exception | None = None  # what ends the run once the uploads in flight are recorded

    def transfer(self, assets: list[SourceAsset]) -> None:
        """Download, check and upload `assets`: downloads on `download_workers` threads, uploads through a window.

        `_jobs` (drawn by the window in this thread) starts downloads up to `prefetch` beyond the uploads in
        flight and turns each checked asset into an upload job; `_settle` records each outcome as it comes back.
        A folder not known yet is found or created while no upload is out: the window is let drain, the folder
        is set up, and a new pass goes on. An asset with the same bytes as an upload in flight waits for its
        outcome (then it is unchanged, or sent when that upload was refused), so the same content is never sent
        twice at once. An error that ends the run (the CRM down past every retry, refused credentials) stops new
        uploads; the ones in flight finish and are recorded first.
        """
        self._todo.extend(assets)
        s = self.summary
        pool = ThreadPoolExecutor(max(1, self.settings.download_workers), thread_name_prefix="media-fetch")
        try:
            with WriteWindow(self.crm, max_in_flight=self.settings.max_in_flight) as window:
                self._window = window
                try:
                    while (self._todo or self._ready) and self._failure is None:
                        for job, outcome in window.stream(self._jobs(pool)):
                            self._settle(job.key, outcome)
                finally:
                    s.peak_in_flight = max(s.peak_in_flight, window.peak_in_flight)
        finally:
            for _, future in self._downloads:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            self._downloads.clear()
        if self._failure is not None:
            raise self._failure

    def _jobs(self, pool: ThreadPoolExecutor) -> Iterator[Job[_Sent]]:
        """Upload jobs in listing order, made as the window asks for them (in the calling thread)."""
        while self._failure is None:
            if not self._ready:
                self._start_downloads(pool)
                if not self._downloads:
                    return  # what waits on an upload in flight is put back in `_todo`: `transfer` goes round again
                asset, future = self._downloads.popleft()
                checked = self._downloaded(asset, future)
                if checked is None:
                    continue
                asset, content = checked
                assert asset.sha256
                if asset.sha256 in self._sending:
                    self._waiting[asset.sha256].append(asset)  # its bytes are dropped; judged by sha256 later
                    continue
                self._ready.append(_Ready(asset, content))
            ready = self._ready[0]
            assert self.folders is not None
            if self._sending and folder_path(ready.asset.category) not in self.folders.known:
                return  # set up once the uploads in flight are recorded (`transfer`'s next pass)
            self._ready.popleft()
            yield self._job(self._intend(ready))

    def _start_downloads(self, pool: ThreadPoolExecutor) -> None:
        """Start downloads until `prefetch` are ahead of a full window, or the byte budget is spent."""
        assert self._window is not None
        room = self._window.size() + max(0, self.settings.prefetch)
        cap = self.settings.max_bytes
        read = lambda asset: self.sources[asset.source].read(asset, cap)  # noqa: E731
        while self._todo and self._held() < room:
            asset = self._todo[0]
            if self._held() and self._held_bytes() + (asset.size or cap) > self.settings.buffer_bytes:
                break
            self._todo.popleft()
            if asset.sha256 and asset.sha256 in self._sending:
                self._waiting[asset.sha256].append(asset)
                continue
            if asset.sha256 and self.planner.settled_by_content(asset, asset.sha256):
                continue  # the same bytes as an asset uploaded earlier in this run
            self._downloads.append((asset, pool.submit(read, asset)))
            self.summary.peak_held = max(self.summary.peak_held, self._held())

    def _downloaded(self, asset: SourceAsset, future: Future) -> tuple[SourceAsset, bytes] | None:
        """A finished download, judged by the planner: the asset (sha256 and size known) and its bytes, or None."""
        try:
            content = future.result()
        except AssetGone:
            self.catalogue.gone(asset)
            return None
        except AssetRejected as why:
            self.catalogue.reject(asset.key, why, asset)
            return None
        self.summary.bytes_downloaded += len(content)
        return self.planner.judge(asset, content)

    def _held(self) -> int:
        return len(self._downloads) + len(self._sending) + len(self._ready)

    def _held_bytes(self) -> int:
        cap = self.settings.max_bytes
        return (
            sum(asset.size or cap for asset, _ in self._downloads)
            + sum(len(u.content) for u in self._sending.values())
            + sum(len(r.content) for r in self._ready)
        )

    def _intend(self, ready: _Ready) -> _Upload:
        """Find the folder (created here, before any upload into it) and write the ledger row before sending."""
        asset, content = ready.asset, ready.content
        assert self.folders is not None and asset.sha256
        sha, ctype = asset.sha256, content_types.normalise(asset.content_type)
        folder_id = self.folders.folder_for(asset.category)
        name = upload_name(asset.name, sha, ctype)
        intent = MediaUpload(sha, asset.key, asset.category, folder_id, name, ctype, len(content))
        self.reconciler.begin(intent)
        return _Upload(asset, intent, content, ready.attempt)

    def _job(self, upload: _Upload) -> Job[_Sent]:
        self._sending[upload.intent.sha256] = upload
        self.summary.peak_held = max(self.summary.peak_held, self._held())
        return Job(upload.intent.sha256, lambda: self._send(upload))

    def _send(self, upload: _Upload) -> _Sent:
        """In a window thread: the upload itself, nothing else (no store write, no shared state)."""
        intent = upload.intent
        before = self.crm.thread_calls(UPLOAD_OP)
        try:
            answer = self.crm.upload_file(
                name=intent.file_name,
                content=upload.content,
                content_type=intent.content_type,
                parent_id=intent.crm_folder_id,
                settle_seconds=self.settle_seconds,
            )
        except Exception as exc:  # noqa: BLE001 - sorted by `_settle`, in the calling thread
            return _Sent(None, exc, self.crm.thread_calls(UPLOAD_OP) - before)
        return _Sent(answer, None, self.crm.thread_calls(UPLOAD_OP) - before)

    def _settle(self, sha: str, outcome: Outcome[_Sent]) -> None:
        """Record one upload's outcome (calling thread): confirmed, refused, folder gone, or the end of the run."""
        upload = self._sending.pop(sha)
        asset, intent = upload.asset, upload.intent
        sent = outcome.result if outcome.ok else _Sent(None, outcome.error, 1)  # type: ignore[arg-type]
        assert sent is not None
        if sent.sends > 1:
            self.reconciler.flag(intent.crm_folder_id)  # sent more than once: a late-landing copy is possible
        error = sent.error
        file_id = ""
        if error is None:
            answer = sent.answer or {}
            file_id = str(answer.get("fileId") or answer.get("id") or answer.get("_id") or "")
            if not file_id:
                error = api_errors.MalformedResponseError(UPLOAD_OP, "no fileId in the response")
        if isinstance(error, api_errors.NotFoundError) and upload.attempt == 1:
            # The folder was deleted in the CRM since its id was stored: find or create it again, once.
            self.reconciler.drop(sha)
            assert self.folders is not None
            if intent.crm_folder_id in {f.crm_folder_id for f in self.folders.known.values()}:
                log.warning("practice %s: folder %s is gone from the CRM; looking again", self.slug, asset.category)
                self.folders.forget()
            self._ready.appendleft(_Ready(asset, upload.content, attempt=2))  # folder and ledger row anew
            return
        if isinstance(error, api_errors.NotFoundError):
            self.reconciler.drop(sha)
        elif isinstance(error, api_errors.ValidationError):
            self.reconciler.drop(sha)
            self.catalogue.refuse(asset, sha, AssetRejected(ReasonCode.CRM_REJECTED, UPLOAD, f"{asset.label}: {error}"))
            self._release(sha)
            return
        if error is not None:
            # The ledger row stays open: the next run looks the file up by name before anything is sent again.
            self._failure = self._failure or error
            return
        self.reconciler.confirm(intent, file_id)
        self.catalogue.uploaded(asset, sha, len(upload.content))
        log.info(
            "practice %s: uploaded %s (%s) as %s",
            self.slug,
            asset.label,
            content_types.human_size(len(upload.content)),
            intent.file_name,
        )
        self._release(sha)

    def _release(self, sha: str) -> None:
        """Assets holding the same bytes as an upload whose outcome is now recorded: back to the front of the queue."""
        waiting = self._waiting.pop(sha, [])
        self._todo.extendleft(reversed(waiting))
