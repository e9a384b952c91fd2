"""Media-library store queries: folders, the upload ledger, the asset catalogue. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from cherry_sync.store import SyncStore
from cherry_sync.store.media_library import MediaAsset, MediaFolder, MediaUpload
from tests.store.conftest import T0

LOC = "loc_1"


def _upload(sha: str, folder: str = "fold_1", name: str = "a-1a2b3c4d.png") -> MediaUpload:
    return MediaUpload(sha, "cherry:ast_1", "Seasonal", folder, name, "image/png", 1234)


def _asset(key: str, sha: str | None = "a" * 64, **over) -> MediaAsset:
    fields = {
        "asset_key": key,
        "source": "cherry",
        "source_id": key.split(":", 1)[1],
        "category": "Seasonal",
        "name": "Spring.png",
        "content_type": "image/png",
        "size_bytes": 1234,
        "sha256": sha,
        "source_updated_at": T0,
    }
    return MediaAsset(**(fields | over))


def test_folders_are_recorded_per_location_and_replaced_by_path(store: SyncStore, slug: str):
    assert store.media_folders(slug, LOC) == {}
    store.record_media_folder(slug, LOC, MediaFolder("Cherry", "f_root", None, True))
    store.record_media_folder(slug, LOC, MediaFolder("Cherry/Seasonal", "f_1", "f_root", False))
    store.record_media_folder(slug, "other_loc", MediaFolder("Cherry", "f_other", None, True))
    store.record_media_folder(slug, LOC, MediaFolder("Cherry/Seasonal", "f_2", "f_root", True))

    folders = store.media_folders(slug, LOC)
    assert {p: (f.crm_folder_id, f.parent_folder_id, f.created) for p, f in folders.items()} == {
        "Cherry": ("f_root", None, True),
        "Cherry/Seasonal": ("f_2", "f_root", True),
    }
    assert store.forget_media_folders(slug, LOC) == 2
    assert store.media_folders(slug, LOC) == {}
    assert set(store.media_folders(slug, "other_loc")) == {"Cherry"}


def test_recheck_flag_is_cleared_only_when_old_enough(store: SyncStore, slug: str):
    store.record_media_folder(slug, LOC, MediaFolder("Cherry/Social", "f_1", "f_root", True))
    assert store.flag_media_folder_recheck(slug, LOC, ["f_1", "f_unknown"], T0) == 1
    assert store.media_folders(slug, LOC)["Cherry/Social"].recheck_since == T0

    assert store.clear_media_folder_recheck(slug, LOC, "f_1", flagged_before=T0) == 0  # flagged at, not before
    store.flag_media_folder_recheck(slug, LOC, ["f_1"], T0 + timedelta(minutes=30))  # flagged again, later
    assert store.clear_media_folder_recheck(slug, LOC, "f_1", flagged_before=T0 + timedelta(minutes=1)) == 0
    assert store.clear_media_folder_recheck(slug, LOC, "f_1", flagged_before=T0 + timedelta(hours=1)) == 1
    assert store.media_folders(slug, LOC)["Cherry/Social"].recheck_since is None


def test_upload_is_pending_until_confirmed_and_a_confirmed_row_is_never_overwritten(store: SyncStore, slug: str):
    sha = "b" * 64
    store.begin_media_upload(slug, LOC, _upload(sha))
    pending = store.media_uploads(slug, LOC)[sha]
    assert not pending.confirmed and pending.requested_at is not None and pending.uploaded_at is None

    store.begin_media_upload(slug, LOC, _upload(sha, folder="fold_2"))  # a retry re-states the intent
    assert store.media_uploads(slug, LOC)[sha].crm_folder_id == "fold_2"

    store.confirm_media_upload(slug, LOC, sha, "file_9")
    done = store.media_uploads(slug, LOC)[sha]
    assert done.confirmed and done.crm_file_id == "file_9" and done.uploaded_at is not None

    store.begin_media_upload(slug, LOC, _upload(sha, folder="fold_3", name="other.png"))
    assert store.media_uploads(slug, LOC)[sha] == done
    assert store.drop_pending_media_upload(slug, LOC, sha) == 0  # confirmed rows stay
    assert store.media_uploads(slug, "other_loc") == {}


def test_pending_upload_can_be_dropped(store: SyncStore, slug: str):
    store.begin_media_upload(slug, LOC, _upload("c" * 64))
    assert store.drop_pending_media_upload(slug, LOC, "c" * 64) == 1
    assert store.media_uploads(slug, LOC) == {}


def test_confirm_without_intent_is_an_error(store: SyncStore, slug: str):
    import pytest

    with pytest.raises(LookupError):
        store.confirm_media_upload(slug, LOC, "d" * 64, "file_1")


def test_catalogue_upsert_keeps_first_seen_and_retire_is_idempotent(store: SyncStore, slug: str):
    clock = {"now": T0}
    timed = SyncStore(store.engine, clock=lambda: clock["now"])
    assert timed.save_media_assets(slug, [_asset("cherry:a1"), _asset("cherry:a2"), _asset("cherry:a1")]) == 2

    clock["now"] = T0 + timedelta(days=1)
    timed.save_media_assets(slug, [_asset("cherry:a1", sha="e" * 64, name="Renamed.png", refused_sha256="e" * 64)])
    assert timed.retire_media_assets(slug, ["cherry:a2", "cherry:missing"]) == 1
    clock["now"] = T0 + timedelta(days=2)
    assert timed.retire_media_assets(slug, ["cherry:a2"]) == 0

    assets = timed.media_assets(slug)
    a1, a2 = assets["cherry:a1"], assets["cherry:a2"]
    assert (a1.first_seen_at, a1.last_seen_at) == (T0, T0 + timedelta(days=1))
    assert (a1.sha256, a1.name, a1.refused_sha256, a1.size_bytes) == ("e" * 64, "Renamed.png", "e" * 64, 1234)
    assert a1.source_updated_at == T0 and a1.retired_at is None
    assert a2.retired_at == T0 + timedelta(days=1)

    # Seen again: back in the listing, no longer retired.
    timed.save_media_assets(slug, [_asset("cherry:a2", size_bytes=30 * 1024 * 1024 * 1024)])
    back = timed.media_assets(slug)["cherry:a2"]
    assert back.retired_at is None and back.size_bytes == 30 * 1024 * 1024 * 1024  # BIGINT: huge files fit
