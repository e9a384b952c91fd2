"""The authorization code exchange: the agency token pair lands in the store encrypted, a used code is refused
with a sentence saying what to do, and the code never reaches the task's output."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from cherry_sync.hooks.oauth import OAuthGrantRevoked
from cherry_sync.onboarding import dag_exchange_authorization_code, exchange_authorization_code


def _token_rows(world) -> list[dict]:
    from cherry_sync.store import get_store

    get_store("cherry_sync_store")  # migrated (the table exists even before any exchange)
    engine = create_engine(world.store_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM crm_oauth_tokens"))]
    finally:
        engine.dispose()


def test_the_code_becomes_an_encrypted_company_pair_and_a_second_exchange_is_refused(world):
    app = world.app_connections()
    code = world.install(0, 1)

    outcome = exchange_authorization_code(code)

    assert outcome == {"company_id": app["company_id"], "approved_locations": [world.location(0), world.location(1)]}
    rows = _token_rows(world)
    assert [(r["subject_type"], r["subject_id"]) for r in rows] == [("company", app["company_id"])]
    fernet = Fernet(world.token_key.encode())
    access = fernet.decrypt(rows[0]["access_token"].encode()).decode()
    refresh = fernet.decrypt(rows[0]["refresh_token"].encode()).decode()
    raw = " ".join(str(v) for r in rows for v in r.values())
    assert access not in raw and refresh not in raw  # ciphertext only
    # ...and it is the real pair: the CRM takes the stored access token for the agency.
    listed = world.crm.http.get(
        f"{world.crm.base_url}/oauth/installedLocations",
        params={"companyId": app["company_id"], "appId": app["app_id"]},
        headers={"Authorization": f"Bearer {access}", "Version": "2021-07-28"},
        timeout=10,
    )
    assert listed.status_code == 200

    with pytest.raises(OAuthGrantRevoked) as refused:
        exchange_authorization_code(code)
    message = str(refused.value)
    assert "authorization code" in message and "cherry_onboard" in message and code not in message
    assert world.crm.oauth_stats()["invalid_grant"] == 1
    assert [r["generation"] for r in _token_rows(world)] == [rows[0]["generation"]]  # the stored pair is kept


def test_the_dag_task_masks_the_code_and_fails_a_used_one_without_retry(world):
    from airflow.sdk.exceptions import AirflowFailException

    from cherry_sync.hooks.base import _mask

    world.app_connections()
    code = world.install(0)
    _mask("probe-secret-value")  # the masker is on here: what it redacts is what a task log would hide
    masker = _masker()
    assert masker.redact("probe-secret-value") == "***"
    assert masker.redact(code) == code

    result = dag_exchange_authorization_code({"authorization_code": f" {code} ", "check_cherry_keys": True})

    assert result["exchanged"] is True and code not in repr(result)
    assert masker.redact(f"code={code}") == "code=***"
    with pytest.raises(AirflowFailException) as failed:
        dag_exchange_authorization_code({"authorization_code": code})
    assert "install the Cherry Sync marketplace app for the agency again" in str(failed.value)
    assert code not in str(failed.value)


def test_no_code_no_exchange(world):
    world.app_connections()
    assert dag_exchange_authorization_code({"authorization_code": None}) == {"exchanged": False}
    assert dag_exchange_authorization_code({"authorization_code": "  "}) == {"exchanged": False}
    assert world.crm.oauth_stats()["token_grants"]["authorization_code"] == 0
    assert _token_rows(world) == []


def _masker():
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    return _secrets_masker()
