"""Rejected assets (with reasons, the rest going on) and the asset folder source (an ObjectStoragePath)."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from cherry_sync.media.errors import AssetFolderError
from cherry_sync.reasons import ReasonCode
from tests.fixtures.sandbox_env import use_window
from tests.media.conftest import (
    PDF,
    SLUG,
    MediaEnv,
    add_cherry_asset,
    assert_no_duplicates,
    png_bytes,
)

OVER_LIMIT = 25 * 1024 * 1024 + 1


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "not a picture")
    return out.getvalue()


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)
    f = path.open("r+b")
    f.write(b"\x89PNG\r\n\x1a\n")
    f.close()


def test_oversize_and_wrong_type_cherry_assets_are_rejected_and_the_rest_go_on(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    huge = add_cherry_asset(env, "Promotions", "Huge Banner.png", b"\x89PNG\r\n\x1a\n" + bytes(OVER_LIMIT))
    fake = add_cherry_asset(env, "Social", "Not Really.png", _zip())  # declared image/png, bytes of an archive
    env.cherry.reset_stats()

    summary = env.run()

    assert summary.rejects_by_reason == {ReasonCode.TOO_LARGE: 1, ReasonCode.TYPE_MISMATCH: 1}
    assert summary.uploaded == 120
    assert env.open_rejections() == {
        f"cherry:{huge['id']}": ReasonCode.TOO_LARGE,
        f"cherry:{fake['id']}": ReasonCode.TYPE_MISMATCH,
    }
    messages = {r.reason_code: r.message for r in env.store.open_rejections(SLUG)}
    assert (
        "over the 25.0 MB limit" in messages[ReasonCode.TOO_LARGE]
        and "Promotions/Huge Banner.png" in messages[ReasonCode.TOO_LARGE]
    )
    # Oversize is judged from the listing: its 25 MB were never downloaded (121 downloads = 120 + the fake).
    assert summary.api_calls["cherry GET /v1/marketing-assets/{id}/content"] == 121
    assert summary.bytes_downloaded < 5 * 1024 * 1024
    assert not any("Huge Banner" in n or "Not Really" in n for names in env.tree().values() for n in names)

    # A re-run rejects them again (attempts 2) and calls the CRM not at all.
    env.crm.reset_stats()
    again = env.run()
    assert again.rejected == 2 and again.uploaded == 0 and env.crm_requests() == 0
    assert {r.attempts for r in env.store.open_rejections(SLUG)} == {2}

    # Fixed at the source (redrawn: a real, small PNG): imported, and the rejection resolved.
    env.cherry.change_asset(huge["id"])
    fixed = env.run()
    assert fixed.uploaded == 1 and env.open_rejections() == {f"cherry:{fake['id']}": ReasonCode.TYPE_MISMATCH}


def test_uploads_the_crm_refuses_are_rejected_while_the_others_in_flight_go_on(sqlite_media_env_factory):
    # This CRM takes files up to 60 KB: three of the assets are refused (413) in the middle of the uploads.
    env = use_window(sqlite_media_env_factory(crm={"max_upload_bytes": 60_000}), 4)
    refused = [
        add_cherry_asset(env, "Seasonal", f"Wide Banner {i}.png", png_bytes(100_000, seed=40 + i)) for i in range(3)
    ]

    summary = env.run()

    assert summary.uploaded == 120 and summary.rejects_by_reason == {ReasonCode.CRM_REJECTED: 3}
    assert summary.peak_in_flight >= 2
    assert env.open_rejections() == {f"cherry:{a['id']}": ReasonCode.CRM_REJECTED for a in refused}
    ledger = env.store.media_uploads(SLUG, env.location_id())
    assert len(ledger) == 120 and all(u.confirmed for u in ledger.values())
    assert not {a["sha256"] for a in refused} & set(ledger)
    assert not any("Wide Banner" in n for names in env.tree().values() for n in names)
    assert_no_duplicates(env)
    # The same bytes are not offered again until they change.
    env.crm.reset_stats()
    again = env.run()
    assert again.rejects_by_reason == {ReasonCode.CRM_REJECTED: 3} and env.crm_requests() == 0


def test_folder_source_through_object_storage_path(sqlite_media_env: MediaEnv, tmp_path: Path):
    env = sqlite_media_env
    root = tmp_path / "asset-pack"
    shared = env.cherry_assets()[0]  # the same bytes as a Cherry asset: not uploaded twice
    shared_bytes = env.cherry.get(f"/v1/marketing-assets/{shared['id']}/content", 0).content
    _write(root / "Practice Photos" / "Lobby.png", png_bytes(3_000, seed=10))
    _write(root / "Practice Photos" / "2026" / "Team.jpg", b"\xff\xd8\xff\xe0" + os.urandom(2_000))
    _write(root / "Seasonal" / "Summer Menu.pdf", PDF)
    _write(root / "Seasonal" / f"copy-of-cherry.{shared['name'].rpartition('.')[2]}", shared_bytes)
    _write(root / "Seasonal" / ".DS_Store", b"finder junk")
    _write(root / "Seasonal" / "logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    _write(root / "Seasonal" / "pack.zip", _zip())
    _write(root / "Seasonal" / "empty.png", b"")
    _write(root / "loose.png", png_bytes(1_000, seed=11))
    _sparse(root / "Holiday" / "huge.png", OVER_LIMIT)

    summary = env.run(folder=root.as_uri())

    assert summary.listed == {"cherry": 120, "folder": 9}  # .DS_Store ignored
    assert summary.uploaded == 123  # 120 + Lobby, Team, Summer Menu; copy-of-cherry is content already there
    assert summary.unchanged == 1
    assert env.open_rejections() == {
        "folder:Seasonal/logo.svg": ReasonCode.UNSUPPORTED_TYPE,
        "folder:Seasonal/pack.zip": ReasonCode.UNSUPPORTED_TYPE,
        "folder:Seasonal/empty.png": ReasonCode.EMPTY_FILE,
        "folder:loose.png": ReasonCode.NO_CATEGORY,
        "folder:Holiday/huge.png": ReasonCode.TOO_LARGE,
    }
    tree = env.tree()
    lobby = hashlib.sha256((root / "Practice Photos" / "Lobby.png").read_bytes()).hexdigest()
    assert tree["Cherry/Practice Photos"].keys() == {
        f"Lobby-{lobby[:8]}.png",
        f"Team-{hashlib.sha256((root / 'Practice Photos' / '2026' / 'Team.jpg').read_bytes()).hexdigest()[:8]}.jpg",
    }
    assert f"Summer Menu-{hashlib.sha256(PDF).hexdigest()[:8]}.pdf" in tree["Cherry/Seasonal"]
    assert sum(1 for names in tree.values() for n in names if shared["sha256"][:8] in n) == 1
    assert_no_duplicates(env)

    # Re-run: nothing uploaded, and unchanged files are not even read again (their hashes are remembered).
    env.crm.reset_stats()
    again = env.run(folder=root.as_uri())
    assert again.uploaded == 0 and env.crm_requests() == 0
    assert again.bytes_downloaded == 0

    # A file changed in place is a new version; a deleted one is retired (its CRM file stays).
    _write(root / "Practice Photos" / "Lobby.png", png_bytes(3_000, seed=12))
    (root / "Seasonal" / "Summer Menu.pdf").unlink()
    (root / "Holiday" / "huge.png").unlink()
    third = env.run(folder=root.as_uri())
    assert (third.uploaded, third.new_versions, third.retired) == (0, 1, 2)
    assert len(env.tree()["Cherry/Practice Photos"]) == 3
    assert "folder:Holiday/huge.png" not in env.open_rejections()  # gone: its rejection is resolved
    catalogue = env.store.media_assets(SLUG)
    assert catalogue["folder:Seasonal/Summer Menu.pdf"].retired_at is not None
    assert catalogue["folder:Practice Photos/Lobby.png"].retired_at is None

    # Without the folder this run, its files are not retired (the source was not listed).
    env.run()
    assert env.store.media_assets(SLUG)["folder:Practice Photos/Lobby.png"].retired_at is None


def test_unreadable_asset_folder_fails_before_any_write(sqlite_media_env: MediaEnv, tmp_path: Path):
    env = sqlite_media_env
    with pytest.raises(AssetFolderError, match="does not exist"):
        env.run(folder=(tmp_path / "missing").as_uri())
    with pytest.raises(AssetFolderError, match="not a valid URI|cannot be read"):
        env.run(folder="nosuchprotocol://bucket/assets")
    assert env.crm_requests() == 0
