"""The practice's `Cherry` folder and its category subfolders in the CRM media library.

The CRM allows sibling folders with the same name, so a folder is always looked up by name before it is created,
and its id is recorded in the store as soon as it is known: later runs use the stored id and make no call at all.
A lookup that finds several folders of that name takes the oldest. Folders are resolved lazily, for the categories
that have something to upload.
"""

from __future__ import annotations

import logging

from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.errors import MalformedResponseError
from cherry_sync.store import SyncStore
from cherry_sync.store.media_library import MediaFolder

log = logging.getLogger(__name__)

ROOT_FOLDER = "Cherry"


def _id_of(item: dict) -> str:
    return str(item.get("id") or item.get("_id") or "")


def folder_path(category: str | None = None) -> str:
    return ROOT_FOLDER if category is None else f"{ROOT_FOLDER}/{category}"


class MediaFolders:
    """Folder ids of one practice's CRM location, found or created on first use and kept in the store."""

    def __init__(self, crm: AesthetixCrmHook, store: SyncStore, slug: str, *, settle_seconds: float = 0.0) -> None:
        self.crm = crm
        self.store = store
        self.slug = slug
        self.location_id = crm.location_id
        self.settle_seconds = settle_seconds
        self.known: dict[str, MediaFolder] = store.media_folders(slug, self.location_id)
        self._children: dict[str, str] | None = None  # the root's subfolders by name, listed once per run
        self.created = 0
        self.found = 0

    def folder_for(self, category: str) -> str:
        """The id of `Cherry/<category>`, creating what is missing."""
        path = folder_path(category)
        if path in self.known:
            return self.known[path].crm_folder_id
        root_id = self.root_id()
        if self._children is None:
            self._children = {}
            for item in self.crm.list_media(kind="folder", parent_id=root_id):  # oldest first
                self._children.setdefault(str(item.get("name")), _id_of(item))
        folder_id = self._children.get(category)
        created = folder_id is None
        if created:
            folder_id = _id_of(self.crm.create_folder(category, parent_id=root_id, settle_seconds=self.settle_seconds))
            self._children[category] = folder_id
        self._remember(MediaFolder(path, folder_id, root_id, created))
        return folder_id

    def root_id(self) -> str:
        path = folder_path()
        if path in self.known:
            return self.known[path].crm_folder_id
        match = next((f for f in self.crm.list_media(kind="folder") if f.get("name") == ROOT_FOLDER), None)
        created = match is None
        if created:
            match = self.crm.create_folder(ROOT_FOLDER, settle_seconds=self.settle_seconds)
        self._remember(MediaFolder(path, _id_of(match), None, created))
        return self.known[path].crm_folder_id

    def forget(self) -> None:
        """The CRM no longer has a stored folder (a practice deleted it): look everything up again."""
        self.store.forget_media_folders(self.slug, self.location_id)
        self.known = {}
        self._children = None

    def _remember(self, folder: MediaFolder) -> None:
        if not folder.crm_folder_id:
            raise MalformedResponseError("POST /medias/folder", "no folder id in the response")
        self.store.record_media_folder(self.slug, self.location_id, folder)
        self.known[folder.path] = folder
        if folder.created:
            self.created += 1
        else:
            self.found += 1
        log.info("media folder %s %s", folder.path, "created" if folder.created else "found")
