"""Auth, Version header and HighLevel's error shapes."""

from __future__ import annotations

import pytest
import requests


def _upsert_body(crm, which=0, **extra):
    return {"locationId": crm.location(which).id, "email": "auth@example.com", **extra}


@pytest.mark.parametrize(
    "headers",
    [
        {"Version": "2021-07-28"},
        {"Version": "2021-07-28", "Authorization": "Bearer pit-00000000-0000-4000-8000-000000000000"},
        {"Version": "2021-07-28", "Authorization": "Basic abc"},
    ],
    ids=["missing", "unknown", "wrong-scheme"],
)
def test_missing_or_unknown_token_is_401(crm_sandbox, headers):
    r = requests.post(crm_sandbox.url("/contacts/upsert"), json=_upsert_body(crm_sandbox), headers=headers, timeout=5)
    assert r.status_code == 401
    body = r.json()
    assert body["statusCode"] == 401
    assert body["message"] == "Invalid token: access token is invalid"
    assert body["error"] == "Unauthorized"


def test_token_of_another_location_is_403(crm_sandbox):
    first, second = crm_sandbox.client(0), crm_sandbox.client(1)
    created = first.post("/contacts/upsert", json=_upsert_body(crm_sandbox)).json()["contact"]

    # Naming the other location in the body, path or query...
    r = second.post("/contacts/upsert", json=_upsert_body(crm_sandbox, which=0))
    assert r.status_code == 403
    assert r.json() == {**r.json(), "statusCode": 403, "message": "The token does not have access to this location"}
    loc0 = crm_sandbox.location(0).id
    assert second.get(f"/locations/{loc0}").status_code == 403
    assert second.get(f"/locations/{loc0}/customFields").status_code == 403
    assert second.get("/opportunities/pipelines", params={"locationId": loc0}).status_code == 403
    # ...or touching the other location's record by id.
    assert second.get(f"/contacts/{created['id']}").status_code == 403
    assert second.put(f"/contacts/{created['id']}", json={"firstName": "X"}).status_code == 403
    assert first.get(f"/contacts/{created['id']}").status_code == 200


@pytest.mark.parametrize("version", [None, "2021-04-15", "v3"])
def test_version_header_is_required_and_checked(crm_sandbox, version):
    headers = crm_sandbox.headers(0)
    if version is None:
        del headers["Version"]
    else:
        headers["Version"] = version
    r = requests.get(crm_sandbox.url(f"/locations/{crm_sandbox.location(0).id}"), headers=headers, timeout=5)
    assert r.status_code == 400
    body = r.json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    assert "2021-07-28" in body["message"]


def test_conversations_want_the_older_version(crm_sandbox):
    client = crm_sandbox.client(0)
    contact = client.post("/contacts/upsert", json=_upsert_body(crm_sandbox)).json()["contact"]
    body = {"type": "Email", "contactId": contact["id"], "subject": "Hi", "html": "<p>Hi</p>"}
    r = client.post("/conversations/messages", json=body)  # 2021-07-28 is wrong here
    assert r.status_code == 400
    assert "2021-04-15" in r.json()["message"]
    ok = crm_sandbox.client(0, version="2021-04-15").post("/conversations/messages", json=body)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/contacts/upsert", {"email": "a@example.com", "foo": 1}),
        ("POST", "/contacts/", {"email": "a@example.com", "additionalEmails": ["b@example.com"]}),
        ("POST", "/contacts/search", {"pageLimit": 10, "bogus": True}),
        ("POST", "/locations/{loc}/customFields", {"name": "X", "dataType": "TEXT", "foo": "bar"}),
        ("POST", "/opportunities/", {"name": "X", "status": "open", "contactId": "c", "pipelineId": "p", "foo": 1}),
    ],
)
def test_unknown_body_properties_are_422_with_message_array(crm_sandbox, method, path, body):
    loc = crm_sandbox.location(0).id
    if path != "/locations/{loc}/customFields":
        body = {**body, "locationId": loc}
    r = crm_sandbox.client(0).request(method, path.replace("{loc}", loc), json=body)
    assert r.status_code == 422
    payload = r.json()
    assert payload["statusCode"] == 422
    assert payload["error"] == "Unprocessable Entity"
    assert isinstance(payload["message"], list)
    unknown = next(k for k in body if k in ("foo", "additionalEmails", "bogus"))
    assert f"property {unknown} should not exist" in payload["message"]


def test_update_contact_rejects_location_id_like_the_real_api(crm_sandbox):
    client = crm_sandbox.client(0)
    contact = client.post("/contacts/upsert", json=_upsert_body(crm_sandbox)).json()["contact"]
    r = client.put(f"/contacts/{contact['id']}", json={"locationId": crm_sandbox.location(0).id, "firstName": "A"})
    assert r.status_code == 422
    assert r.json()["message"] == ["property locationId should not exist"]


def test_wrong_types_are_422_not_coerced(crm_sandbox):
    r = crm_sandbox.client(0).post("/contacts/upsert", json=_upsert_body(crm_sandbox, firstName=123, tags="vip"))
    assert r.status_code == 422
    assert set(r.json()["message"]) == {"firstName must be a string", "tags must be an array"}


def test_nested_validation_messages_name_the_path(crm_sandbox):
    body = _upsert_body(crm_sandbox, dndSettings={"Email": {"status": "maybe"}}, tags=["ok", 5])
    r = crm_sandbox.client(0).post("/contacts/upsert", json=body)
    assert r.status_code == 422
    messages = r.json()["message"]
    assert "tags.1 must be a string" in messages
    assert any(m.startswith("dndSettings.Email.status must be one of") for m in messages)


def test_not_found_shapes(crm_sandbox):
    client = crm_sandbox.client(0)
    r = client.get("/contacts/abcdefghijklmnopqrst")
    assert r.status_code == 404
    assert r.json()["statusCode"] == 404 and "not found" in r.json()["message"]
    r = client.get("/no/such/route")
    assert r.status_code == 404
    assert r.json()["message"] == "Cannot GET /no/such/route"


def test_invalid_json_is_400(crm_sandbox):
    r = crm_sandbox.client(0).post("/contacts/upsert", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["statusCode"] == 400


def test_get_location(crm_sandbox):
    loc = crm_sandbox.location(1)
    r = crm_sandbox.client(1).get(f"/locations/{loc.id}")
    assert r.status_code == 200
    body = r.json()["location"]
    assert body["id"] == loc.id and body["name"] == loc.name
    assert body["settings"]["allowDuplicateContact"] is False
