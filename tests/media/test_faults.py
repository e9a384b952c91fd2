"""Faults during the import leave no duplicate file or folder in the CRM (its sandbox state is the witness), and a
task killed mid-import re-uploads nothing the CRM had confirmed."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from cherry_sync.hooks.crm import AesthetixCrmHook
from tests.media.conftest import SLUG, MediaEnv, add_cherry_asset, assert_no_duplicates, png_bytes

BIG = 200_000  # above ~64 KB the sandbox keeps a hung upload's body and applies it after the hang


def _files_named(env: MediaEnv, name: str) -> list[dict]:
    return [f for f in env.files() if f["name"] == name]


def _wait_for(predicate, timeout: float = 15.0) -> None:
    """Wait for the sandbox to reach a state (not a timed assertion: the deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the sandbox never reached the expected state"
        time.sleep(0.1)


def test_write_then_500_on_every_kind_of_write_leaves_one_of_each(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    # The CRM applies the write, then answers 500: two folder creates and a few uploads, spread over the run.
    env.crm.set_faults(
        write_then_500_share=0.1, script=["write_then_500", "write_then_500"], path_prefixes=["/medias/"], seed=3
    )

    summary = env.run()

    env.crm.clear_faults()
    assert summary.uploaded == 120
    assert_no_duplicates(env)
    assert len(env.files()) == 120 and len(env.folders()) == 6
    assert env.crm.stats()["status_codes"].get("500", 0) >= 3, "the faults did fire"
    # Every ledger row points at a file holding exactly those bytes.
    for sha, upload in env.store.media_uploads(SLUG, env.location_id).items():
        assert hashlib.sha256(env.crm.media_bytes(upload.crm_file_id)).hexdigest() == sha
    env.crm.reset_stats()
    assert env.run().uploaded == 0 and env.crm_writes() == {}


def test_upload_hanging_past_the_read_timeout_is_found_not_repeated(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    env.run()
    asset = add_cherry_asset(env, "Promotions", "Big Poster.png", png_bytes(BIG, seed=1))
    name = f"Big Poster-{asset['sha256'][:8]}.png"
    # The CRM sits on the upload past the client's 1 s read timeout, then applies it; the hook looks for the file
    # for up to one more read timeout before it would send it again.
    env.crm.set_faults(script=["hang"], hang_seconds=1.4, path_prefixes=["/medias/upload-file"])
    env.crm.reset_stats()

    summary = env.run()

    # Every upload the hook sent has been answered (a hung one is counted when it completes) before looking.
    sent = summary.api_calls["crm POST /medias/upload-file"]
    _wait_for(lambda: env.crm_writes()["POST /medias/upload-file"] == sent)
    assert summary.uploaded == 1
    assert env.crm_writes() == {"POST /medias/upload-file": 1}, "found after the hang, never sent twice"
    assert len(_files_named(env, name)) == 1
    upload = env.store.media_uploads(SLUG, env.location_id)[asset["sha256"]]
    assert upload.crm_file_id == _files_named(env, name)[0]["id"]
    assert_no_duplicates(env)


def test_upload_landing_after_the_repeat_is_swept_on_the_next_run(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    env.run()
    content = png_bytes(BIG, seed=2)
    asset = add_cherry_asset(env, "Social", "Late Lander.png", content)
    name = f"Late Lander-{asset['sha256'][:8]}.png"
    # Hung for longer than the client waits (1 s) plus the settle window (1 s): the repeat lands first, then the
    # hung request too -> two files of the same name.
    env.crm.set_faults(script=["hang"], hang_seconds=3.5, path_prefixes=["/medias/upload-file"])
    first = env.run()
    assert first.uploaded == 1
    _wait_for(lambda: len(_files_named(env, name)) == 2)
    kept = env.store.media_uploads(SLUG, env.location_id)[asset["sha256"]].crm_file_id

    env.crm.reset_stats()
    sweep = env.run()

    assert sweep.duplicates_removed == 1 and sweep.uploaded == 0
    assert [f["id"] for f in _files_named(env, name)] == [kept]
    assert env.crm.media_bytes(kept) == content
    assert env.crm_writes() == {"DELETE /medias/{id}": 1}
    assert_no_duplicates(env)
    # The folder stays watched for an hour, with reads only; after that, an unchanged run calls nothing.
    env.crm.reset_stats()
    env.run()
    assert env.crm_writes() == {} and env.crm_requests() > 0
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731
    env.run(clock=later)
    env.crm.reset_stats()
    env.run()
    assert env.crm_requests() == 0


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the importer catches it."""


def _killing_crm(env: MediaEnv, after_uploads: int, when: str) -> AesthetixCrmHook:
    """A CRM hook whose task 'dies' at upload number `after_uploads + 1`: before sending it, or after the CRM
    confirmed it but before the store could record it."""
    _, crm = env.hooks()
    real = crm.upload_file
    count = {"n": 0}

    def upload_file(**kwargs):
        count["n"] += 1
        if count["n"] > after_uploads:
            if when == "before_send":
                raise _Killed()
            real(**kwargs)
            raise _Killed()
        return real(**kwargs)

    crm.upload_file = upload_file  # type: ignore[method-assign]
    return crm


@pytest.mark.parametrize("when", ["before_send", "after_crm_confirmed"])
def test_killed_mid_import_resumes_without_duplicates(media_env: MediaEnv, when: str):
    env = media_env
    with pytest.raises(_Killed):
        env.run(crm=_killing_crm(env, after_uploads=40, when=when))
    ledger = env.store.media_uploads(SLUG, env.location_id)
    assert sum(1 for u in ledger.values() if u.confirmed) == 40
    assert sum(1 for u in ledger.values() if not u.confirmed) == 1  # the one in flight
    env.crm.reset_stats()

    resumed = env.run()

    landed = when == "after_crm_confirmed"
    assert resumed.recovered == (1 if landed else 0)
    assert resumed.uploaded == 80 - resumed.recovered
    writes = env.crm_writes()
    assert writes["POST /medias/upload-file"] == 80 - resumed.recovered
    assert set(writes) <= {"POST /medias/upload-file", "POST /medias/folder"}  # folders of categories not reached
    assert len(env.files()) == 120 and len(env.folders()) == 6
    assert_no_duplicates(env)
    assert all(u.confirmed for u in env.store.media_uploads(SLUG, env.location_id).values())


def test_category_folder_deleted_in_the_crm_is_found_again_or_recreated(sqlite_media_env: MediaEnv):
    env = sqlite_media_env
    env.run()
    seasonal = next(f for f in env.folders() if f["name"] == "Seasonal")
    _, crm = env.hooks()
    assert crm.delete_media(seasonal["id"])  # a practice tidying up its media library
    changed = next(a for a in env.cherry_assets() if a["category"] == "Seasonal")
    env.cherry.change_asset(changed["id"])

    summary = env.run()

    assert summary.new_versions == 1
    assert summary.folders_created == 1 and summary.folders_found == 1  # Seasonal anew; Cherry looked up again
    folders = env.folders()
    assert sorted(f["name"] for f in folders) == sorted(
        ["Cherry", "Seasonal", "Holiday", "Promotions", "Social", "Email"]
    )
    assert len(env.tree()["Cherry/Seasonal"]) == 1
    assert_no_duplicates(env)
