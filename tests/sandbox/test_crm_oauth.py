"""HighLevel OAuth in the CRM sandbox: grants, rotation, location tokens, expiry, installs, suspension."""

from __future__ import annotations

import argparse
import threading
import time

import pytest
import requests

from sandbox.crm.cli import add_arguments, config_from_args, describe
from sandbox.crm.oauth import ACCESS_PREFIX, REFRESH_PREFIX

TIMEOUT = 10


def _refresh(crm, refresh_token: str, **form: str) -> requests.Response:
    return crm.oauth_token(grant_type="refresh_token", refresh_token=refresh_token, **form)


def _location_token(crm, company_token: str, location_id: str) -> str:
    resp = crm.oauth_location_token(company_token, location_id)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def _installed(crm, company_token: str, **params) -> requests.Response:
    app = crm.oauth_app()
    query = {"companyId": app["company_id"], "appId": app["app_id"], **params}
    return requests.get(
        crm.url("/oauth/installedLocations"), params=query, headers=crm.token_headers(company_token), timeout=TIMEOUT
    )


def _assert_invalid_jwt(resp: requests.Response) -> None:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert (body["statusCode"], body["message"], body["error"]) == (401, "Invalid JWT", "Unauthorized")


def _assert_bad_request(resp: requests.Response, message: str) -> None:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert (body["statusCode"], body["message"], body["error"]) == (400, message, "Bad Request")


def test_full_flow_install_code_company_token_location_token_api_calls(crm_sandbox):
    crm = crm_sandbox
    app = crm.oauth_app()
    loc = crm.location(0)
    code = crm.oauth_install([loc.id, crm.location(1).id])

    resp = crm.oauth_token(
        grant_type="authorization_code", code=code, user_type="Company", redirect_uri=app["redirect_uri"]
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    company = resp.json()
    assert company["access_token"].startswith(ACCESS_PREFIX)
    assert company["refresh_token"].startswith(REFRESH_PREFIX)
    assert company["token_type"] == "Bearer" and company["expires_in"] == 86399
    assert company["userType"] == "Company" and company["companyId"] == app["company_id"]
    assert company["approvedLocations"] == [loc.id, crm.location(1).id]
    assert company["isBulkInstallation"] is True and "locationId" not in company

    minted = crm.oauth_location_token(company["access_token"], loc.id)
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert set(body) >= {"access_token", "token_type", "expires_in", "scope", "locationId", "userId", "appId"}
    assert "refresh_token" not in body
    assert body["locationId"] == loc.id and body["appId"] == app["app_id"]

    client = crm.token_client(body["access_token"])
    got = client.get(f"/locations/{loc.id}")
    assert got.status_code == 200, got.text
    assert got.json()["location"]["companyId"] == app["company_id"]
    upsert = client.post("/contacts/upsert", json={"locationId": loc.id, "email": "oauth@example.com"})
    assert upsert.status_code in (200, 201), upsert.text
    # The OAuth token is the location's caller: the record is there for its PIT too, and other locations are 403.
    contact_id = upsert.json()["contact"]["id"]
    assert crm.client(0).get(f"/contacts/{contact_id}").status_code == 200
    assert client.get(f"/locations/{crm.location(1).id}").status_code == 403
    # The code was single use.
    again = crm.oauth_token(grant_type="authorization_code", code=code, user_type="Company")
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_location_token_shares_the_locations_rate_limit_bucket_with_its_pit(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(0)
    company = crm.oauth_company_grant()
    token = _location_token(crm, company["access_token"], loc.id)
    crm.override_rate_limits(loc.id, burst_limit=3, burst_window_seconds=60)

    oauth_client, pit_client = crm.token_client(token), crm.client(0)
    statuses = [c.get(f"/locations/{loc.id}").status_code for c in (oauth_client, pit_client, oauth_client)]
    assert statuses == [200, 200, 200]
    assert pit_client.get(f"/locations/{loc.id}").status_code == 429
    assert oauth_client.get(f"/locations/{loc.id}").status_code == 429
    # Another location's bucket is untouched.
    assert crm.client(1).get(f"/locations/{crm.location(1).id}").status_code == 200
    assert crm.stats()["by_key"][loc.id]["requests"] == 5


def test_refresh_rotates_and_a_reused_refresh_token_is_invalid_grant(crm_sandbox):
    crm = crm_sandbox
    first = crm.oauth_company_grant()

    second = _refresh(crm, first["refresh_token"], user_type="Company")
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["userType"] == "Company"

    reused = _refresh(crm, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant" and reused.json()["error_description"]
    # ... and forever after, while the rotated one works once.
    assert _refresh(crm, first["refresh_token"]).status_code == 400
    assert _refresh(crm, second["refresh_token"]).status_code == 200
    # The access token issued before the refresh stays valid until it expires.
    loc = crm.location(0).id
    assert crm.oauth_location_token(first["access_token"], loc).status_code == 200


def _race(url: str, forms: list[dict]) -> list[requests.Response]:
    """POST every form to `url` at the same moment, one thread and connection each."""
    barrier = threading.Barrier(len(forms))
    results: list[requests.Response] = []
    lock = threading.Lock()

    def attempt(form: dict) -> None:
        with requests.Session() as session:
            barrier.wait()
            resp = session.post(url, data=form, timeout=TIMEOUT)
        with lock:
            results.append(resp)

    threads = [threading.Thread(target=attempt, args=(form,)) for form in forms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    return results


def test_concurrent_refreshes_with_one_token_have_exactly_one_winner(crm_sandbox):
    crm = crm_sandbox
    app = crm.oauth_app()
    refresh_token = crm.oauth_company_grant()["refresh_token"]
    form = {"client_id": app["client_id"], "client_secret": app["client_secret"], "grant_type": "refresh_token"}
    for _ in range(5):
        results = _race(crm.url("/oauth/token"), [{**form, "refresh_token": refresh_token}] * 4)
        winners = [r for r in results if r.status_code == 200]
        losers = [r for r in results if r.status_code == 400]
        assert len(winners) == 1 and len(losers) == 3, [r.text for r in results]
        assert all(r.json()["error"] == "invalid_grant" for r in losers)
        refresh_token = winners[0].json()["refresh_token"]
    stats = crm.oauth_stats()
    assert stats["token_grants"]["refresh_token"] == 5 and stats["invalid_grant"] == 15


def test_expired_location_token_is_invalid_jwt_and_a_new_one_works(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(0).id
    company = crm.oauth_company_grant()
    assert crm.set_oauth_ttl(1) == {"access_token_ttl_seconds": 1.0}
    minted = crm.oauth_location_token(company["access_token"], loc).json()
    assert minted["expires_in"] == 1
    client = crm.token_client(minted["access_token"])
    assert client.get(f"/locations/{loc}").status_code == 200
    time.sleep(1.2)
    _assert_invalid_jwt(client.get(f"/locations/{loc}"))
    _assert_invalid_jwt(client.post("/contacts/upsert", json={"locationId": loc, "email": "late@example.com"}))

    crm.set_oauth_ttl(86399)
    fresh = _location_token(crm, company["access_token"], loc)  # the company token was issued with the long TTL
    assert crm.token_client(fresh).get(f"/locations/{loc}").status_code == 200
    assert crm.oauth_stats()["expired_token_401"] == 2
    # Dead tokens are not counted against the location, and nothing reached a handler.
    assert crm.stats()["by_key"][loc]["requests"] == 2


def test_expire_all_and_config_ttl(crm_sandbox_factory):
    crm = crm_sandbox_factory(oauth_access_token_ttl_seconds=30)
    loc = crm.location(0).id
    company = crm.oauth_company_grant()
    assert company["expires_in"] == 30
    token = _location_token(crm, company["access_token"], loc)
    assert crm.oauth_expire_all() == {"expired": 2}
    _assert_invalid_jwt(crm.token_client(token).get(f"/locations/{loc}"))
    _assert_invalid_jwt(crm.oauth_location_token(company["access_token"], loc))
    # The refresh token survives: a refresh and a new mint bring the practice back.
    renewed = _refresh(crm, company["refresh_token"]).json()
    assert crm.token_client(_location_token(crm, renewed["access_token"], loc)).get(f"/locations/{loc}").ok


def test_uninstall_kills_location_tokens_and_refuses_new_ones(crm_sandbox):
    crm = crm_sandbox
    gone, kept = crm.location(0).id, crm.location(1).id
    company = crm.oauth_company_grant([gone, kept])
    gone_token = _location_token(crm, company["access_token"], gone)
    kept_token = _location_token(crm, company["access_token"], kept)

    assert crm.oauth_uninstall(gone) == {"locationId": gone, "uninstalled": True}
    _assert_invalid_jwt(crm.token_client(gone_token).get(f"/locations/{gone}"))
    _assert_bad_request(
        crm.oauth_location_token(company["access_token"], gone), "This app is not installed on the location"
    )
    assert crm.token_client(kept_token).get(f"/locations/{kept}").status_code == 200
    rows = {row["_id"]: row for row in _installed(crm, company["access_token"]).json()["locations"]}
    assert rows[gone]["isInstalled"] is False and "installedAt" not in rows[gone]
    assert rows[kept]["isInstalled"] is True
    # A location never installed is refused the same way; the PIT keeps working.
    _assert_bad_request(
        crm.oauth_location_token(company["access_token"], crm.location(2).id),
        "This app is not installed on the location",
    )
    assert crm.client(0).get(f"/locations/{gone}").status_code == 200


def test_revoke_voids_the_whole_install(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(0).id
    company = crm.oauth_company_grant()
    token = _location_token(crm, company["access_token"], loc)

    crm.oauth_revoke()
    refused = _refresh(crm, company["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    _assert_invalid_jwt(crm.oauth_location_token(company["access_token"], loc))
    _assert_invalid_jwt(_installed(crm, company["access_token"]))
    _assert_invalid_jwt(crm.token_client(token).get(f"/locations/{loc}"))
    assert crm.client(0).get(f"/locations/{loc}").status_code == 200  # PITs are not the app's
    # Reinstalling gives a working install again.
    again = crm.oauth_company_grant()
    assert crm.token_client(_location_token(crm, again["access_token"], loc)).get(f"/locations/{loc}").ok


def test_suspended_location_answers_400_for_pit_and_oauth(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(0).id
    company = crm.oauth_company_grant()
    token = _location_token(crm, company["access_token"], loc)
    crm.override_rate_limits(loc, burst_limit=3, burst_window_seconds=60)

    assert crm.set_location_active(loc, False) == {"locationId": loc, "active": False}
    for client in (crm.client(0), crm.token_client(token)):
        _assert_bad_request(client.get(f"/locations/{loc}"), "Location is not active")
        _assert_bad_request(client.post("/contacts/upsert", json={"locationId": loc}), "Location is not active")
    _assert_bad_request(crm.oauth_location_token(company["access_token"], loc), "Location is not active")
    # Auth comes first: a suspended location's calls spend none of its rate limit and meet no injected fault.
    crm.set_faults(server_error_share=1.0)
    _assert_bad_request(crm.client(0).get(f"/locations/{loc}"), "Location is not active")
    crm.clear_faults()
    assert crm.client(1).get(f"/locations/{crm.location(1).id}").status_code == 200

    crm.set_location_active(loc, True)
    statuses = [c.get(f"/locations/{loc}").status_code for c in (crm.client(0), crm.token_client(token))]
    assert statuses == [200, 200]


def test_installed_locations_pages_and_filters(crm_sandbox_factory):
    crm = crm_sandbox_factory(locations=7)
    ids = [loc.id for loc in crm.locations]
    company = crm.oauth_company_grant(ids[:5])
    token = company["access_token"]

    seen = []
    for skip in range(0, 8, 3):
        page = _installed(crm, token, skip=skip, limit=3)
        assert page.status_code == 200, page.text
        assert page.json()["count"] == 7
        seen += [row["_id"] for row in page.json()["locations"]]
    assert seen == ids
    default = _installed(crm, token).json()
    assert len(default["locations"]) == 7 and default["installToFutureLocations"] is False

    installed = _installed(crm, token, isInstalled="true").json()
    assert installed["count"] == 5 and [r["_id"] for r in installed["locations"]] == ids[:5]
    assert all(r["isInstalled"] and r["installedAt"].endswith("Z") for r in installed["locations"])
    assert _installed(crm, token, isInstalled="false").json()["count"] == 2
    name = crm.location(6).name
    assert [r["_id"] for r in _installed(crm, token, query=name.upper()).json()["locations"]] == [ids[6]]

    for missing in ("companyId", "appId"):
        app = crm.oauth_app()
        params = {"companyId": app["company_id"], "appId": app["app_id"]}
        del params[missing]
        resp = requests.get(
            crm.url("/oauth/installedLocations"), params=params, headers=crm.token_headers(token), timeout=TIMEOUT
        )
        assert resp.status_code == 422
        assert resp.json()["message"] == [f"{missing} should not be empty"]
    # A location token, a PIT or no Version header are refused.
    location_token = _location_token(crm, token, ids[0])
    assert _installed(crm, location_token).status_code == 401
    headers = crm.headers(0)
    assert requests.get(crm.url("/oauth/installedLocations"), headers=headers, timeout=TIMEOUT).status_code == 401
    no_version = {"Authorization": f"Bearer {token}"}
    resp = requests.get(crm.url("/oauth/installedLocations"), headers=no_version, timeout=TIMEOUT)
    assert resp.status_code == 400 and "2021-07-28" in resp.json()["message"]
    assert crm.oauth_stats()["installed_locations_calls"] == 7


def test_install_all_covers_future_locations(crm_sandbox):
    crm = crm_sandbox
    company = crm.oauth_company_grant("all")
    assert company["installToFutureLocations"] is True
    added = crm.add_location(name="New practice")
    token = _location_token(crm, company["access_token"], added.id)
    assert crm.token_client(token).get(f"/locations/{added.id}").status_code == 200


@pytest.mark.parametrize(
    ("form", "messages"),
    [
        ({}, ["client_id should not be empty", "client_secret should not be empty", "grant_type should not be empty"]),
        ({"grant_type": "authorization_code"}, ["code should not be empty"]),
        ({"grant_type": "refresh_token"}, ["refresh_token should not be empty"]),
        (
            {"grant_type": "password", "code": "x"},
            ["grant_type must be one of the following values: authorization_code, refresh_token, client_credentials"],
        ),
        (
            {"grant_type": "authorization_code", "code": "x", "user_type": "Agency"},
            ["user_type must be one of the following values: Company, Location"],
        ),
    ],
    ids=["empty", "no-code", "no-refresh-token", "bad-grant-type", "bad-user-type"],
)
def test_token_endpoint_422s(crm_sandbox, form, messages):
    app = crm_sandbox.oauth_app()
    creds = {"client_id": app["client_id"], "client_secret": app["client_secret"]} if form else {}
    resp = requests.post(crm_sandbox.url("/oauth/token"), data={**creds, **form}, timeout=TIMEOUT)
    assert resp.status_code == 422
    body = resp.json()
    assert body["statusCode"] == 422 and body["error"] == "Unprocessable Entity"
    assert body["message"] == messages


def test_json_body_is_422_even_when_complete(crm_sandbox):
    crm = crm_sandbox
    app = crm.oauth_app()
    code = crm.oauth_install()
    body = {**app, "grant_type": "authorization_code", "code": code, "user_type": "Company"}
    resp = requests.post(crm.url("/oauth/token"), json=body, timeout=TIMEOUT)
    assert resp.status_code == 422 and "client_id should not be empty" in resp.json()["message"]
    # The code was not spent by the refused request.
    assert crm.oauth_token(grant_type="authorization_code", code=code, user_type="Company").status_code == 200

    company = crm.oauth_company_grant()
    loc = crm.location(0).id
    json_mint = requests.post(
        crm.url("/oauth/locationToken"),
        json={"companyId": app["company_id"], "locationId": loc},
        headers=crm.token_headers(company["access_token"]),
        timeout=TIMEOUT,
    )
    assert json_mint.status_code == 422
    assert json_mint.json()["message"] == ["companyId should not be empty", "locationId should not be empty"]


def test_wrong_client_is_401_invalid_client(crm_sandbox):
    crm = crm_sandbox
    app = crm.oauth_app()
    code = crm.oauth_install()
    for creds in ({"client_secret": "nope"}, {"client_id": "someone-else"}):
        form = {**app, "grant_type": "authorization_code", "code": code, **creds}
        form = {k: form[k] for k in ("client_id", "client_secret", "grant_type", "code")}
        resp = requests.post(crm.url("/oauth/token"), data=form, timeout=TIMEOUT)
        assert resp.status_code == 401
        assert resp.json()["error"] == "invalid_client"
    assert crm.oauth_stats()["invalid_client"] == 2


def test_grant_mismatches_are_invalid_grant(crm_sandbox):
    crm = crm_sandbox
    code = crm.oauth_install()
    wrong_redirect = crm.oauth_token(
        grant_type="authorization_code", code=code, user_type="Company", redirect_uri="https://evil.example/cb"
    )
    assert wrong_redirect.status_code == 400 and wrong_redirect.json()["error"] == "invalid_grant"
    company = crm.oauth_company_grant()
    as_location = _refresh(crm, company["refresh_token"], user_type="Location")
    assert as_location.status_code == 400 and as_location.json()["error"] == "invalid_grant"
    assert crm.oauth_token(grant_type="authorization_code", code="sbx-code-unknown").status_code == 400


def test_location_user_type_grant(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(1).id
    code = crm.oauth_install([loc], user_type="Location")
    resp = crm.oauth_token(grant_type="authorization_code", code=code, user_type="Location")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["userType"] == "Location" and body["locationId"] == loc and "approvedLocations" not in body
    assert crm.token_client(body["access_token"]).get(f"/locations/{loc}").status_code == 200
    rotated = _refresh(crm, body["refresh_token"], user_type="Location").json()
    assert rotated["locationId"] == loc
    assert crm.token_client(rotated["access_token"]).get(f"/locations/{loc}").status_code == 200
    # A location token cannot mint tokens, and a company token cannot call location routes.
    assert crm.oauth_location_token(rotated["access_token"], loc).status_code == 401
    company = crm.oauth_company_grant()
    assert crm.token_client(company["access_token"]).get(f"/locations/{loc}").status_code == 401


def test_token_endpoints_are_rate_limited_per_company(crm_sandbox):
    crm = crm_sandbox
    company_id = crm.oauth_app()["company_id"]
    company = crm.oauth_company_grant()  # one /oauth/token call
    crm.override_rate_limits(company_id, burst_limit=2, burst_window_seconds=60)
    loc = crm.location(0).id
    assert crm.oauth_location_token(company["access_token"], loc).status_code == 200
    assert _refresh(crm, company["refresh_token"]).status_code == 200
    limited = crm.oauth_location_token(company["access_token"], loc)
    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Max"] == "2"
    # Location calls have their own buckets.
    assert crm.client(0).get(f"/locations/{loc}").status_code == 200


def test_stats_count_and_reset_clears_oauth(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(0).id
    company = crm.oauth_company_grant()
    token = _location_token(crm, company["access_token"], loc)
    _refresh(crm, company["refresh_token"])
    _refresh(crm, company["refresh_token"])
    crm.oauth_token(grant_type="refresh_token", refresh_token="x", client_secret="bad")  # overrides the secret
    _installed(crm, company["access_token"])
    _assert_invalid_jwt(crm.token_client(ACCESS_PREFIX + "unknown").get(f"/locations/{loc}"))
    assert crm.oauth_stats() == {
        "token_grants": {"authorization_code": 1, "refresh_token": 1},
        "invalid_grant": 1,
        "invalid_client": 1,
        "location_tokens": 1,
        "expired_token_401": 1,
        "installed_locations_calls": 1,
    }
    app_before = crm.oauth_app()
    crm.set_oauth_ttl(5)
    crm.reset()
    assert crm.oauth_stats()["token_grants"] == {"authorization_code": 0, "refresh_token": 0}
    assert crm.oauth_app() == app_before  # seeded: the app registration survives a reset
    assert crm._admin("GET", "/oauth/settings") == {"access_token_ttl_seconds": 86399.0}
    _assert_invalid_jwt(crm.token_client(token).get(f"/locations/{loc}"))
    assert _refresh(crm, company["refresh_token"]).status_code == 400


def test_tokens_are_random_and_the_app_is_seeded(crm_sandbox_factory):
    first, second = crm_sandbox_factory(), crm_sandbox_factory()
    assert first.oauth_app() == second.oauth_app()
    assert crm_sandbox_factory(seed=7).oauth_app()["client_id"] != first.oauth_app()["client_id"]
    a, b = first.oauth_company_grant(), second.oauth_company_grant()
    assert a["access_token"] != b["access_token"] and a["refresh_token"] != b["refresh_token"]
    # Admin views never show access or refresh tokens.
    for path in ("/oauth/app", "/oauth/stats", "/locations", "/stats"):
        text = first.http.get(first.url(f"/_sandbox{path}"), timeout=TIMEOUT).text
        assert a["access_token"] not in text and a["refresh_token"] not in text


def test_pit_behaviour_is_unchanged(crm_sandbox):
    crm = crm_sandbox
    loc = crm.location(0).id
    unknown = crm.token_client("pit-00000000-0000-4000-8000-000000000000").get(f"/locations/{loc}")
    assert unknown.status_code == 401
    assert unknown.json()["message"] == "Invalid token: access token is invalid"
    assert crm.client(0).get(f"/locations/{loc}").status_code == 200
    # A PIT cannot use the agency endpoints.
    assert crm.oauth_location_token(crm.location(0).token, loc).status_code == 401
    assert crm.oauth_stats()["expired_token_401"] == 0


def test_cli_sets_the_ttl_and_names_the_app(crm_sandbox):
    parser = argparse.ArgumentParser()
    add_arguments(parser, prefix="crm-")
    assert config_from_args(parser.parse_args([]), prefix="crm-").oauth_access_token_ttl_seconds == 86399
    config = config_from_args(parser.parse_args(["--crm-oauth-ttl", "2.5"]), prefix="crm-")
    assert config.oauth_access_token_ttl_seconds == 2.5
    banner = describe(crm_sandbox.base_url, crm_sandbox.app)
    app = crm_sandbox.oauth_app()
    assert app["client_id"] in banner and app["client_secret"] not in banner


def test_token_grants_are_not_counted_as_crm_writes() -> None:
    """What the demo and the tests call a CRM write: data written, not a token granted."""
    from sandbox.common.stats import crm_writes

    counts = {
        "POST /oauth/token": 2,
        "POST /oauth/locationToken": 3,
        "GET /oauth/installedLocations": 1,
        "POST /contacts/search": 4,
        "POST /contacts/upsert": 5,
        "PUT /contacts/{contactId}": 6,
        "DELETE /contacts/{contactId}/tags": 7,
    }
    assert crm_writes(counts) == 5 + 6 + 7


def test_every_issued_code_and_token_is_kept_for_leak_scans(crm_sandbox) -> None:
    crm = crm_sandbox
    crm.reset()
    grant = crm.oauth_company_grant()
    location = _location_token(crm, grant["access_token"], crm.locations[0].id)
    refreshed = _refresh(crm, grant["refresh_token"]).json()
    issued = crm.oauth_issued_tokens()
    expected = {grant["access_token"], grant["refresh_token"], location}
    assert expected | {refreshed["access_token"], refreshed["refresh_token"]} <= set(issued)
    assert sum(token.startswith("sbx-code-") for token in issued) == 1
