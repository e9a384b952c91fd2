"""TokenService and the CRM hook on OAuth against the CRM sandbox's marketplace app, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cherry_sync.hooks import errors
from cherry_sync.hooks import oauth as oauth_module
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.oauth import LocationInactive, OAuthGrantRevoked
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.reasons import ReasonCode
from cherry_sync.store.oauth_tokens import COMPANY, LOCATION
from cherry_sync.store.schema_oauth import crm_oauth_tokens
from tests.oauth.conftest import FAST, oauth_connections, token_service


def hook_for(service, crm, which: int = 0) -> AesthetixCrmHook:
    location = crm.location(which).id
    return AesthetixCrmHook(
        service.app.conn_id,
        location_id=location,
        connection=service.app.connection,
        credentials=service.credentials(location),
        pacer=MemoryPacer(),
        retry=FAST,
    )


@pytest.fixture
def connected(oauth_crm, store):
    conns = oauth_connections(oauth_crm)
    service = token_service(conns, store)
    agency = service.connect(oauth_crm.oauth_install("all"))
    return oauth_crm, conns, service, agency


def test_connect_stores_ciphertext_only(connected, store):
    crm, conns, service, agency = connected
    assert agency.company_id == conns.app_info["company_id"]
    assert set(agency.approved_locations) == {loc.id for loc in crm.locations}
    token = service.location_token(crm.location(0).id)
    with store.engine.begin() as conn:
        rows = conn.execute(select(crm_oauth_tokens)).all()
    assert {(r.subject_type, r.generation) for r in rows} == {(COMPANY, 1), (LOCATION, 1)}
    dumped = repr([tuple(r) for r in rows])
    assert token not in dumped and service.company_token() not in dumped
    assert all(r.refresh_token is None for r in rows if r.subject_type == LOCATION)
    assert crm.oauth_stats()["token_grants"] == {"authorization_code": 1, "refresh_token": 0}


def test_tokens_are_reused_from_memory_and_from_the_store(connected, store):
    crm, conns, service, _ = connected
    location = crm.location(0).id
    first = service.location_token(location)
    assert service.location_token(location) == first
    other_worker = token_service(conns, store)  # nothing in memory: reads the store
    assert other_worker.location_token(location) == first
    stats = crm.oauth_stats()
    assert stats["location_tokens"] == 1 and stats["token_grants"]["refresh_token"] == 0


def test_the_hook_sends_the_location_token_and_renews_it_after_a_401(connected):
    crm, _, service, _ = connected
    hook = hook_for(service, crm)
    assert hook.list_pipelines() is not None
    before = service.location_token(crm.location(0).id)
    crm.oauth_expire_all()  # company and location tokens die early: the store still thinks they are good

    assert hook.list_pipelines() is not None
    stats = crm.oauth_stats()
    assert stats["expired_token_401"] >= 1
    assert stats["token_grants"]["refresh_token"] == 1  # the locationToken call refused the company token
    assert stats["location_tokens"] == 2 and stats["invalid_grant"] == 0
    assert service.location_token(crm.location(0).id) != before


def test_near_expiry_tokens_are_replaced_before_use(oauth_crm, store):
    crm = oauth_crm
    crm.set_oauth_ttl(2.0)
    service = token_service(oauth_connections(crm), store)
    service.connect(crm.oauth_install("all"))
    location = crm.location(0).id
    first = service.location_token(location)
    # A quarter of a 2 s life is the margin here (300 s for a real day-long token): after 1.6 s both are replaced.
    import time

    time.sleep(1.6)
    second = service.location_token(location)
    assert second != first
    stats = crm.oauth_stats()
    assert stats["token_grants"]["refresh_token"] == 1 and stats["location_tokens"] == 2
    assert stats["expired_token_401"] == 0


def test_revoked_install_is_one_sentence_to_act_on(connected):
    crm, _, service, _ = connected
    hook = hook_for(service, crm)
    hook.list_pipelines()
    crm.oauth_revoke()
    with pytest.raises(OAuthGrantRevoked) as failed:
        hook.list_pipelines()
    exc = failed.value
    assert exc.reason_code is ReasonCode.AUTH_FAILED and exc.disposition.value == "fail"
    text = exc.describe()
    assert "reinstall the Cherry Sync marketplace app for the agency" in text and "cherry_onboard" in text
    assert text.count(". ") == 0 and text.endswith(".")  # one sentence
    assert crm.oauth_stats()["invalid_grant"] == 1


def test_uninstalled_location_names_the_location(connected):
    crm, _, service, _ = connected
    location = crm.location(1).id
    hook = hook_for(service, crm, 1)
    hook.list_pipelines()
    crm.oauth_uninstall(location)
    with pytest.raises(OAuthGrantRevoked) as failed:
        hook.list_pipelines()
    assert location in str(failed.value) and "cherry_onboard" in str(failed.value)
    assert failed.value.ledger_details() == {"reason": "auth_failed", "location_id": location}
    hook_for(service, crm, 0).list_pipelines()  # the other locations go on


def test_suspended_location_fails_alone_with_location_inactive(connected, store, oauth_crm):
    crm, conns, service, _ = connected
    location = crm.location(2).id
    hook = hook_for(service, crm, 2)
    hook.list_pipelines()
    crm.set_location_active(location, False)
    with pytest.raises(LocationInactive) as on_call:
        hook.list_pipelines()  # an API call with a valid token of a suspended location
    assert on_call.value.reason_code is ReasonCode.LOCATION_INACTIVE
    assert location in on_call.value.describe()
    fresh = token_service(conns, store)  # a new worker's mint for it is refused the same way
    store.forget_oauth_tokens(LOCATION, [location])
    with pytest.raises(LocationInactive):
        fresh.location_token(location)
    hook_for(service, crm, 0).list_pipelines()


def test_a_used_code_is_refused_and_nothing_connected(oauth_crm, store):
    service = token_service(oauth_connections(oauth_crm), store)
    with pytest.raises(OAuthGrantRevoked) as not_yet:
        service.location_token(oauth_crm.location(0).id)
    assert "No agency authorization" in str(not_yet.value)
    code = oauth_crm.oauth_install("all")
    service.connect(code)
    with pytest.raises(OAuthGrantRevoked) as refused:
        service.connect(code)
    assert "authorization code was not accepted" in str(refused.value)


def test_installed_locations_every_page(connected, monkeypatch):
    crm, _, service, _ = connected
    monkeypatch.setattr(oauth_module, "INSTALLED_PAGE_LIMIT", 2)  # 3 locations: two pages
    found = service.installed_locations()
    assert sorted(loc["_id"] for loc in found) == sorted(loc.id for loc in crm.locations)
    assert crm.oauth_stats()["installed_locations_calls"] == 2


def test_the_app_connection_test_button(oauth_crm):
    conns = oauth_connections(oauth_crm)
    ok, message = AesthetixCrmHook(conns.app.conn_id, connection=conns.app, pacer=MemoryPacer()).test_connection()
    assert ok, message
    wrong = oauth_connections(oauth_crm)
    wrong.app.password = "not-the-secret-" + "x" * 20
    ok, message = AesthetixCrmHook(conns.app.conn_id, connection=wrong.app, pacer=MemoryPacer()).test_connection()
    assert not ok and "rejected" in message and wrong.app.password not in message
    assert oauth_crm.oauth_stats()["invalid_client"] == 1


def test_pit_hooks_are_untouched_by_oauth(crm_sandbox):
    from tests.fixtures.hooks import crm_hook

    hook = crm_hook(crm_sandbox)
    hook.list_pipelines()
    with pytest.raises(errors.AuthError):
        crm_hook(crm_sandbox, token="pit-wrong").list_pipelines()  # a PIT is never renewed: the 401 stands
    assert hook.calls["GET /opportunities/pipelines"] == 1
