"""`Reconciler`: keeps the upload ledger true to what the CRM holds, when a run died or an answer was lost.

Each upload has a ledger row (`media_uploads`), written before it is sent and confirmed when the CRM's answer
comes back, so what a run could not learn is settled by reading the CRM's folders:

- An upload sent and never confirmed (the task died, or gave up) is looked up by name in its folder at the start
  of the next run: found -> recorded; not found -> forgotten, so the planner uploads it again. Its folder is
  flagged too, since a lost upload may still land.
- An upload the hook sent more than once (an unknown outcome, looked up and repeated) may land late, after the
  repeat: its folder is flagged (`media_folders.recheck_since`) and swept at the start and end of every run for
  `recheck_window`; a second file of one of our names is deleted, keeping the ledger's.

Every method runs in the run's own thread (store writes never come from the upload or download threads).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from cherry_sync.hooks import errors as api_errors
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.media.folders import MediaFolders
from cherry_sync.media.summary import MediaSummary
from cherry_sync.store import SyncStore
from cherry_sync.store.media_library import MediaUpload

log = logging.getLogger(__name__)


class Reconciler:
    """One practice location's upload ledger (sha256 -> upload), its writes, and the folder re-checks."""

    def __init__(
        self,
        *,
        slug: str,
        store: SyncStore,
        crm: AesthetixCrmHook,
        ledger: dict[str, MediaUpload],
        folders: MediaFolders | None,
        summary: MediaSummary,
        recheck_window: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.slug = slug
        self.store = store
        self.crm = crm
        self.location_id = crm.location_id
        self.ledger = ledger
        self.folders = folders  # None in a dry run (nothing is written or swept)
        self.summary = summary
        self.recheck_window = recheck_window
        self.clock = clock
        self._flagged: set[str] = set()  # folders with an unknown upload outcome in this run

    # -- the ledger --------------------------------------------------------------------------------

    def begin(self, intent: MediaUpload) -> None:
        """The ledger row of an upload about to be sent (its file id unknown)."""
        self.store.begin_media_upload(self.slug, self.location_id, intent)

    def confirm(self, upload: MediaUpload, file_id: str) -> None:
        """The CRM holds the upload as `file_id`."""
        self.store.confirm_media_upload(self.slug, self.location_id, upload.sha256, file_id)
        self.ledger[upload.sha256] = replace(upload, crm_file_id=file_id)

    def drop(self, sha: str) -> None:
        """The upload did not land: forget its open row."""
        self.store.drop_pending_media_upload(self.slug, self.location_id, sha)

    def flag(self, folder_id: str) -> None:
        """A file may land late in this folder: sweep it for `recheck_window`."""
        if folder_id not in self._flagged:
            self._flagged.add(folder_id)
            self.store.flag_media_folder_recheck(self.slug, self.location_id, [folder_id], self.clock())

    # -- settling --------------------------------------------------------------------------------

    def settle_earlier_runs(self) -> None:
        """Before any upload: record or forget earlier runs' unconfirmed uploads, sweep the folders they flagged."""
        self._recover_unconfirmed()
        assert self.folders is not None
        flagged = sorted(f.crm_folder_id for f in self.folders.known.values() if f.recheck_since is not None)
        self._sweep(flagged, clear=True)

    def sweep_flagged(self) -> None:
        """After the uploads: sweep the folders this run flagged (they stay flagged for the next runs)."""
        self._sweep(sorted(self._flagged), clear=False)

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
                    self.confirm(upload, ids[0])
                    self.summary.recovered += 1
                else:
                    self.drop(upload.sha256)
                    del self.ledger[upload.sha256]
            self.flag(folder_id)  # a lost upload may still land: keep an eye on the folder for a while
        if self.summary.recovered:
            log.info("practice %s: %d earlier upload(s) found in the CRM", self.slug, self.summary.recovered)

    def _sweep(self, folder_ids: Iterable[str], *, clear: bool) -> None:
        """Delete late-landing copies of our own files (same name as a ledger file, another id) in these folders."""
        assert self.folders is not None
        now = self.clock()
        window = self.recheck_window
        by_id = {f.crm_folder_id: f for f in self.folders.known.values()}
        for folder_id in folder_ids:
            ours = {u.file_name: u for u in self.ledger.values() if u.confirmed and u.crm_folder_id == folder_id}
            for name, ids in self._files_by_name(folder_id).items() if ours else ():
                upload = ours.get(name)
                if upload is None:
                    continue
                keep = upload.crm_file_id if upload.crm_file_id in ids else ids[0]
                if keep != upload.crm_file_id:  # ours was deleted in the CRM; a copy of the same bytes remains
                    self.confirm(upload, keep)
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
