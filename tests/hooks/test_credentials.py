"""Credentials: the token is registered with Airflow's log masker, never logged, and never becomes a pacing
key, table or Redis key name."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from cherry_sync.hooks import errors
from cherry_sync.hooks.pacing import PaceSettings, PacingTimeoutError, SQLitePacer, pacer_from_url
from tests.hooks.conftest import cherry_hook, crm_hook


def _fragments(secret: str) -> list[str]:
    """The secret and any 12-character piece of it (a truncated key is still a leak)."""
    return [secret] + [secret[i : i + 12] for i in range(0, len(secret) - 11, 4)]


def _assert_absent(secret: str, text: str) -> None:
    for piece in _fragments(secret):
        assert piece not in text


def test_tokens_are_masked_for_airflow_logs(cherry_sandbox, crm_sandbox):
    from airflow.sdk._shared.secrets_masker import redact

    key, token = cherry_sandbox.practices[0].api_key, crm_sandbox.location(0).token
    cherry_hook(cherry_sandbox).get_practice()
    crm_hook(crm_sandbox).list_pipelines()
    masked = redact(f"Authorization: Bearer {key} / Bearer {token}")
    assert key not in masked and token not in masked


def test_tokens_never_logged(cherry_sandbox, crm_sandbox, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    key, token = cherry_sandbox.practices[0].api_key, crm_sandbox.location(0).token
    cherry_sandbox.set_faults(script=["500", "hang", "429_no_retry_after"], hang_seconds=1.5)
    crm_sandbox.set_faults(script=["503", "429", "hang"], retry_after_seconds=0, hang_seconds=1.5)
    cherry_hook(cherry_sandbox).get_practice()
    crm_hook(crm_sandbox).list_pipelines()
    with pytest.raises(errors.AuthError):
        crm_hook(crm_sandbox, token=token + "0").list_pipelines()
    out, err = capfd.readouterr()
    text = "\n".join([r.getMessage() for r in caplog.records] + [out, err])
    assert "retrying" in text  # the retries were logged (the check below is not vacuous)
    _assert_absent(key, text)
    _assert_absent(token, text)


def test_pace_keys_and_pacer_names_hide_the_key(cherry_sandbox, crm_sandbox, tmp_path):
    key, token = cherry_sandbox.practices[0].api_key, crm_sandbox.location(0).token
    pacer = SQLitePacer(tmp_path / "pacing.db")
    cherry = cherry_hook(cherry_sandbox, pacer=pacer)
    crm = crm_hook(crm_sandbox, pacer=pacer)
    _assert_absent(key, cherry.pace_key)
    assert cherry.pace_key.startswith("cherry-")
    assert crm.pace_key == f"crm-{crm_sandbox.location(0).id}"  # HighLevel counts per location, whatever token
    _assert_absent(token, crm.pace_key)
    cherry.get_practice()
    crm.list_pipelines()
    pacer.close()
    with sqlite3.connect(tmp_path / "pacing.db") as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert len([n for n in names if n.startswith("pace_")]) == 2
    _assert_absent(key, " ".join(names))
    _assert_absent(token, " ".join(names))


def test_redis_key_names_hide_the_key(cherry_sandbox, redis_url):
    import redis

    key = cherry_sandbox.practices[0].api_key
    pacer = pacer_from_url(redis_url)
    hook = cherry_hook(cherry_sandbox, pacer=pacer)
    client = redis.Redis.from_url(redis_url)
    try:
        hook.get_practice()
        names = [k.decode() for k in client.scan_iter("cherry_sync:pace:*")]
        assert names
        _assert_absent(key, " ".join(names))
    finally:
        for name in client.scan_iter("cherry_sync:pace:*"):
            client.delete(name)
        client.close()
        pacer.close()


@pytest.mark.postgres
def test_postgres_table_names_hide_the_key(cherry_sandbox, postgres_url):
    import psycopg

    key = cherry_sandbox.practices[0].api_key
    pacer = pacer_from_url(postgres_url)
    try:
        cherry_hook(cherry_sandbox, pacer=pacer).get_practice()
    finally:
        pacer.close()
    conninfo = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        names = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert names
    _assert_absent(key, " ".join(names))


def test_pacer_gives_up_after_max_wait(tmp_path):
    pacer = SQLitePacer(tmp_path / "p.db")
    settings = PaceSettings(max_requests=1, window_seconds=60, max_wait_seconds=0.2)
    pacer.acquire("k", settings)
    with pytest.raises(PacingTimeoutError):
        pacer.acquire("k", settings)
    pacer.close()


def test_pacer_from_url():
    from cherry_sync.hooks.pacing import MemoryPacer, default_pacer

    assert pacer_from_url(None) is default_pacer()
    assert isinstance(pacer_from_url("memory://"), MemoryPacer)
    with pytest.raises(ValueError):
        pacer_from_url("mysql://x")


def test_errors_say_which_api_and_connection_failed_in_plain_words(cherry_sandbox, crm_sandbox):
    from tests.hooks.conftest import closed_port_url

    with pytest.raises(errors.AuthError) as crm_401:
        crm_hook(crm_sandbox, token="pit-wrong").list_pipelines()
    assert (crm_401.value.service, crm_401.value.conn_id, crm_401.value.attempts) == ("crm", "crm_test", 1)
    assert errors.describe(crm_401.value).startswith(
        "the CRM (Aesthetix / HighLevel API) rejected the token of Airflow connection 'crm_test' as invalid (HTTP 401"
    )
    with pytest.raises(errors.AuthError) as cherry_401:
        cherry_hook(cherry_sandbox, api_key="ck_wrong").get_practice()
    assert "the Cherry API rejected the API key of Airflow connection 'cherry_test'" in errors.describe(
        cherry_401.value
    )
    with pytest.raises(errors.ApiUnavailableError) as refused:
        cherry_hook(closed_port_url(), api_key="ck_any").get_practice()
    assert errors.describe(refused.value) == (
        "the Cherry API could not be reached after 6 attempts (connection failed); check the host of Airflow "
        "connection 'cherry_test' [GET /v1/practice]"
    )
