"""The media import against the sandboxes: folder tree, one upload per content, re-runs, changes, dry runs."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from cherry_sync.media.importer import ImportSettings
from cherry_sync.media.sources import CherryAssetSource, Listing
from cherry_sync.reasons import ReasonCode
from tests.fixtures.sandbox_env import use_window
from tests.media.conftest import SLUG, MediaEnv, assert_no_duplicates, png_bytes

CATEGORIES = {"Seasonal", "Holiday", "Promotions", "Social", "Email"}
NAME = re.compile(r"^(?P<stem>.+)-(?P<sha>[0-9a-f]{8})\.(?P<ext>png|jpg|pdf)$")


def _expected_tree(assets: list[dict]) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for a in assets:
        stem, _, ext = a["name"].rpartition(".")
        out.setdefault(f"Cherry/{a['category']}", Counter())[f"{stem}-{a['sha256'][:8]}.{ext}"] += 1
    return out


def test_first_import_builds_the_folder_tree_and_uploads_every_asset_once(media_env: MediaEnv):
    assets = media_env.cherry_assets()
    assert len(assets) == 120 and {a["category"] for a in assets} == CATEGORIES

    summary = media_env.run()

    assert (summary.uploaded, summary.unchanged, summary.rejected) == (120, 0, 0)
    assert (summary.folders_created, summary.folders_found) == (6, 0)
    # One `Cherry` folder at the top, one subfolder per category in it, each file once, in its category.
    folders = media_env.folders()
    root = [f for f in folders if f.get("parentId") is None]
    assert [f["name"] for f in root] == ["Cherry"]
    assert sorted(f["name"] for f in folders if f.get("parentId") == root[0]["id"]) == sorted(CATEGORIES)
    assert media_env.tree() == _expected_tree(assets)
    assert_no_duplicates(media_env)
    # The CRM holds Cherry's bytes, and the ledger knows every file.
    by_sha = {a["sha256"]: a for a in assets}
    ledger = media_env.store.media_uploads(SLUG, media_env.location_id())
    assert set(ledger) == set(by_sha)
    files = {f["id"]: f for f in media_env.files()}
    for sha, upload in ledger.items():
        assert upload.confirmed and upload.crm_file_id in files
        assert hashlib.sha256(media_env.crm.media_bytes(upload.crm_file_id)).hexdigest() == sha
        assert files[upload.crm_file_id]["contentType"] == by_sha[sha]["content_type"]
    # One write per asset and per folder, nothing else.
    assert media_env.crm_writes() == Counter({"POST /medias/upload-file": 120, "POST /medias/folder": 6})
    assert summary.api_calls["cherry GET /v1/marketing-assets/{id}/content"] == 120
    assert all(NAME.match(name) for names in media_env.tree().values() for name in names)
    assert summary.bytes_uploaded == summary.bytes_downloaded == sum(a["size"] for a in assets)


def test_re_run_without_source_change_makes_no_crm_call(media_env: MediaEnv):
    media_env.run()
    media_env.crm.reset_stats()

    again = media_env.run()

    assert (again.uploaded, again.new_versions, again.unchanged, again.rejected) == (0, 0, 120, 0)
    assert media_env.crm_requests() == 0, "an unchanged re-run must not even read the CRM"
    assert again.bytes_downloaded == 0, "content known by its listed sha256 is not downloaded again"
    assert again.api_calls == {"cherry GET /v1/marketing-assets": 1}


def test_changed_renamed_removed_and_new_assets(media_env: MediaEnv):
    media_env.run()
    assets = sorted(media_env.cherry_assets(), key=lambda a: a["id"])
    changed, renamed, removed = assets[0], assets[1], assets[2]
    old_files = {f["id"] for f in media_env.files()}
    after_change = media_env.cherry.change_asset(changed["id"])
    media_env.cherry.rename_asset(renamed["id"], "Renamed - Same Bytes.png")
    media_env.cherry.remove_asset(removed["id"])
    new = media_env.cherry.add_asset("Promotions", "Brand New Promo.png")
    media_env.crm.reset_stats()

    summary = media_env.run()

    assert (summary.uploaded, summary.new_versions, summary.retired) == (1, 1, 1)
    assert summary.unchanged == 118  # 120 - changed - removed; the renamed one is among them
    assert media_env.crm_writes() == Counter({"POST /medias/upload-file": 2})
    # Old files all stay (the removed asset's and the old version of the changed one included).
    assert old_files <= {f["id"] for f in media_env.files()}
    tree = media_env.tree()
    stem = changed["name"].rpartition(".")[0]
    versions = {n for n in tree[f"Cherry/{changed['category']}"] if n.startswith(f"{stem}-")}
    assert len(versions) == 2 and any(after_change["sha256"][:8] in n for n in versions)
    assert f"Brand New Promo-{new['sha256'][:8]}.png" in tree["Cherry/Promotions"]
    assert not any(n.startswith("Renamed - Same Bytes") for names in tree.values() for n in names)
    assert_no_duplicates(media_env)
    # The catalogue: the rename is known, the removed asset is retired, the changed one has its new hash.
    catalogue = media_env.store.media_assets(SLUG)
    assert catalogue[f"cherry:{renamed['id']}"].name == "Renamed - Same Bytes.png"
    assert catalogue[f"cherry:{removed['id']}"].retired_at is not None
    assert catalogue[f"cherry:{changed['id']}"].sha256 == after_change["sha256"]
    assert sum(1 for a in catalogue.values() if a.retired_at is not None) == 1

    media_env.crm.reset_stats()
    assert media_env.run().uploaded == 0 and media_env.crm_requests() == 0


def test_same_bytes_under_two_assets_are_uploaded_once(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    content = png_bytes(5_000, seed=1)
    env.cherry.add_asset("Social", "Twin A.png", content=content)
    env.cherry.add_asset("Email", "Twin B.png", content=content)
    assert env.run(dry_run=True).would_upload_count == 121

    summary = env.run()

    assert (summary.uploaded, summary.unchanged) == (121, 1)
    sha = hashlib.sha256(content).hexdigest()
    assert len([f for f in env.files() if sha[:8] in f["name"]]) == 1


def test_dry_run_lists_what_would_be_uploaded_and_touches_nothing(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    summary = env.run(dry_run=True)

    assert summary.would_upload_count == 120 and len(summary.would_upload) == 120
    listed = {(a["category"], a["name"], a["size"]) for a in env.cherry_assets()}
    assert {(w["category"], w["name"], w["size"]) for w in summary.would_upload} == listed
    assert summary.uploaded == 0 and summary.bytes_downloaded == 0
    assert env.crm_requests() == 0
    assert env.store.media_uploads(SLUG, env.location_id()) == {}
    assert env.store.media_assets(SLUG) == {}
    assert env.store.media_folders(SLUG, env.location_id()) == {}

    env.run()
    env.cherry.change_asset(env.cherry_assets()[0]["id"])
    again = env.run(dry_run=True)
    assert again.would_upload_count == 1 and again.unchanged == 119


def test_download_not_matching_the_listed_checksum_is_rejected_then_imported_next_run(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    target = env.cherry_assets()[0]

    class ChangedAfterListing(CherryAssetSource):
        """The asset gets new bytes between the listing and the download (a race at the source)."""

        def list_assets(self, known=None) -> Listing:
            listing = super().list_assets(known)
            env.cherry.change_asset(target["id"])
            return listing

    cherry, crm = env.hooks()
    importer = env.importer(crm=crm)
    importer.sources = {"cherry": ChangedAfterListing(cherry)}
    summary = importer.run()

    assert summary.rejects_by_reason == {ReasonCode.CHECKSUM_MISMATCH: 1} and summary.uploaded == 119
    assert env.open_rejections() == {f"cherry:{target['id']}": ReasonCode.CHECKSUM_MISMATCH}

    again = env.run()
    assert again.uploaded == 1 and again.rejected == 0
    assert env.open_rejections() == {}
    assert_no_duplicates(env)


def test_uploads_overlap_in_a_window_and_downloads_stay_bounded(sqlite_media_env: MediaEnv):
    env = use_window(sqlite_media_env, 4)  # 50 ms per CRM request: one at a time would take 120 x 50 ms

    summary = env.run()

    assert summary.uploaded == 120
    assert env.crm.stats()["by_key"][env.location_id()]["max_concurrent"] >= 2, "uploads were answered side by side"
    assert 2 <= summary.peak_in_flight <= 4
    # Held at once: the uploads in flight plus `prefetch` (2) downloads ahead of them, never more.
    assert summary.peak_held <= 4 + 2
    assert env.crm_writes() == Counter({"POST /medias/upload-file": 120, "POST /medias/folder": 6})
    assert_no_duplicates(env)
    env.crm.reset_stats()
    assert env.run().unchanged == 120 and env.crm_requests() == 0


def test_folder_calls_never_overlap_uploads_and_one_at_a_time_means_one(sqlite_media_env: MediaEnv):
    env = use_window(sqlite_media_env, 1)
    env.latency_ms = 10  # enough for two requests to meet, were they sent side by side
    env.clear_faults()

    summary = env.run(settings=ImportSettings(prefetch=0))

    assert summary.uploaded == 120 and summary.peak_in_flight == 1
    assert summary.peak_held == 1, "prefetch 0 and one in flight: one asset in memory at a time"
    assert env.crm.stats()["by_key"][env.location_id()]["max_concurrent"] == 1


def test_the_byte_budget_holds_back_downloads(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    env.crm_extra["max_in_flight"] = 4

    summary = env.run(settings=ImportSettings(buffer_bytes=1))

    assert summary.uploaded == 120
    assert summary.peak_held == 1, "a budget smaller than any asset: one at a time (one always fits)"
    assert summary.peak_in_flight == 1
