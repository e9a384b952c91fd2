"""Tag endpoints: one contact, and bulk add/remove with per-contact results."""

from __future__ import annotations

import pytest


@pytest.fixture
def api(crm_sandbox):
    return crm_sandbox.client(0)


@pytest.fixture
def loc(crm_sandbox):
    return crm_sandbox.location(0).id


def make(api, loc, n, tags=()):
    return [
        api.post("/contacts/upsert", json={"locationId": loc, "email": f"c{i}@example.com", "tags": list(tags)}).json()[
            "contact"
        ]["id"]
        for i in range(n)
    ]


def tags_of(api, contact_id):
    return api.get(f"/contacts/{contact_id}").json()["contact"]["tags"]


def test_add_and_remove_on_one_contact(api, loc):
    (cid,) = make(api, loc, 1, tags=["keep"])
    r = api.post(f"/contacts/{cid}/tags", json={"tags": ["Cherry-Approved", "keep"]})
    assert r.status_code == 201
    assert r.json() == {"tags": ["keep", "cherry-approved"]}
    r = api.request("DELETE", f"/contacts/{cid}/tags", json={"tags": ["keep", "never-had"]})
    assert r.status_code == 200
    assert r.json() == {"tags": ["cherry-approved"]}
    assert tags_of(api, cid) == ["cherry-approved"]


def test_tags_body_is_whitelisted(api, loc):
    (cid,) = make(api, loc, 1)
    r = api.post(f"/contacts/{cid}/tags", json={"tags": ["a"], "locationId": loc})
    assert r.status_code == 422


def test_bulk_add_and_remove(api, loc):
    ids = make(api, loc, 3, tags=["old"])
    r = api.post("/contacts/bulk/tags/update/add", json={"contacts": ids, "tags": ["new"], "locationId": loc})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["succeded"] is True and body["errorCount"] == 0
    assert [x["contactId"] for x in body["responses"]] == ids
    assert body["responses"][0]["tagsAdded"] == ["new"] and body["responses"][0]["oldTags"] == ["old"]
    assert all(tags_of(api, cid) == ["old", "new"] for cid in ids)

    r = api.post("/contacts/bulk/tags/update/remove", json={"contacts": ids[:2], "tags": ["old"], "locationId": loc})
    assert r.json()["errorCount"] == 0
    assert [tags_of(api, cid) for cid in ids] == [["new"], ["new"], ["old", "new"]]

    r = api.post(
        "/contacts/bulk/tags/update/remove",
        json={"contacts": ids[2:], "tags": [], "locationId": loc, "removeAllTags": True},
    )
    assert r.json()["errorCount"] == 0
    assert tags_of(api, ids[2]) == []


def test_bulk_items_fail_individually(crm_sandbox, api, loc):
    ids = make(api, loc, 2)
    foreign = (
        crm_sandbox.client(1)
        .post("/contacts/upsert", json={"locationId": crm_sandbox.location(1).id, "email": "f@example.com"})
        .json()["contact"]["id"]
    )
    batch = [ids[0], "abcdef", foreign, "nosuchcontact0000000", ids[1]]
    r = api.post("/contacts/bulk/tags/update/add", json={"contacts": batch, "tags": ["t"], "locationId": loc})
    assert r.status_code == 201
    body = r.json()
    assert body["errorCount"] == 3 and body["succeded"] is False
    by_id = {x["contactId"]: x for x in body["responses"]}
    assert by_id[ids[0]]["type"] == by_id[ids[1]]["type"] == "success"
    assert by_id["abcdef"]["message"] == "contact id is not a valid firebase id"
    assert by_id[foreign]["message"] == "contact does not belong to location"
    assert by_id["nosuchcontact0000000"]["type"] == "error"
    assert tags_of(api, ids[1]) == ["t"]
    assert crm_sandbox.client(1).get(f"/contacts/{foreign}").json()["contact"]["tags"] == []


def test_bulk_caps_at_100_contacts(api, loc):
    ids = [f"{n:020d}" for n in range(101)]
    r = api.post("/contacts/bulk/tags/update/add", json={"contacts": ids, "tags": ["t"], "locationId": loc})
    assert r.status_code == 422
    assert r.json()["message"] == ["contacts must contain no more than 100 elements"]
    r = api.post("/contacts/bulk/tags/update/add", json={"contacts": ids[:100], "tags": ["t"], "locationId": loc})
    assert r.status_code == 201
    assert r.json()["errorCount"] == 100


def test_bulk_rejects_other_locations_and_bad_actions(crm_sandbox, api, loc):
    (cid,) = make(api, loc, 1)
    other = crm_sandbox.location(1).id
    assert (
        api.post("/contacts/bulk/tags/update/add", json={"contacts": [cid], "tags": ["t"], "locationId": other})
    ).status_code == 403
    assert (
        api.post("/contacts/bulk/tags/update/replace", json={"contacts": [cid], "tags": ["t"], "locationId": loc})
    ).status_code == 422


def test_poisoned_contact_fails_the_whole_batch(crm_sandbox, api, loc):
    ids = make(api, loc, 3)
    crm_sandbox.poison(ids[1])
    r = api.post("/contacts/bulk/tags/update/add", json={"contacts": ids, "tags": ["t"], "locationId": loc})
    assert r.status_code == 400
    assert r.json()["statusCode"] == 400
    assert all(tags_of(api, cid) == [] for cid in ids)  # nothing applied
    # The per-contact fallback still works, and batches without the poisoned id succeed.
    assert api.post(f"/contacts/{ids[1]}/tags", json={"tags": ["t"]}).status_code == 201
    r = api.post(
        "/contacts/bulk/tags/update/add", json={"contacts": [ids[0], ids[2]], "tags": ["t"], "locationId": loc}
    )
    assert r.status_code == 201 and r.json()["errorCount"] == 0
    crm_sandbox.poison()
    r = api.post("/contacts/bulk/tags/update/add", json={"contacts": ids, "tags": ["u"], "locationId": loc})
    assert r.status_code == 201
