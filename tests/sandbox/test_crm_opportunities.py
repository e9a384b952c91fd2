"""Pipelines and opportunities."""

from __future__ import annotations

import pytest


@pytest.fixture
def api(crm_sandbox):
    return crm_sandbox.client(0)


@pytest.fixture
def loc(crm_sandbox):
    return crm_sandbox.location(0).id


@pytest.fixture
def pipeline(api, loc):
    pipelines = api.get("/opportunities/pipelines", params={"locationId": loc}).json()["pipelines"]
    return next(p for p in pipelines if p["name"] == "Patient Journey")


def contact(api, loc, email):
    return api.post("/contacts/upsert", json={"locationId": loc, "email": email}).json()["contact"]["id"]


def create(api, loc, pipeline, contact_id, **extra):
    body = {"pipelineId": pipeline["id"], "locationId": loc, "name": "Treatment", "status": "open"}
    r = api.post("/opportunities/", json={**body, "contactId": contact_id, **extra})
    assert r.status_code == 201, r.text
    return r.json()["opportunity"]


def test_seeded_pipeline(pipeline):
    assert [s["name"] for s in pipeline["stages"]] == [
        "Consultation",
        "Treatment Planned",
        "Financing",
        "Booked",
        "Completed",
    ]
    assert [s["position"] for s in pipeline["stages"]] == [0, 1, 2, 3, 4]
    assert all(s["id"] for s in pipeline["stages"])


def test_create_get_update_status(api, loc, pipeline):
    cid = contact(api, loc, "o@example.com")
    financing = pipeline["stages"][2]["id"]
    opp = create(api, loc, pipeline, cid, pipelineStageId=financing, monetaryValue=3500.5)
    assert opp["pipelineStageId"] == financing and opp["monetaryValue"] == 3500.5
    assert opp["contactId"] == cid and opp["contact"]["email"] == "o@example.com"
    assert api.get(f"/opportunities/{opp['id']}").json()["opportunity"]["id"] == opp["id"]

    booked = pipeline["stages"][3]["id"]
    r = api.put(f"/opportunities/{opp['id']}", json={"pipelineStageId": booked, "monetaryValue": 4000})
    assert r.status_code == 200, r.text
    assert r.json()["opportunity"]["pipelineStageId"] == booked
    assert r.json()["opportunity"]["monetaryValue"] == 4000

    r = api.put(f"/opportunities/{opp['id']}/status", json={"status": "won"})
    assert r.json() == {"succeded": True}
    assert api.get(f"/opportunities/{opp['id']}").json()["opportunity"]["status"] == "won"


def test_default_stage_is_the_first(api, loc, pipeline):
    opp = create(api, loc, pipeline, contact(api, loc, "d@example.com"))
    assert opp["pipelineStageId"] == pipeline["stages"][0]["id"]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"status": "all"}, 422),
        ({"status": "pending"}, 422),
        ({"pipelineStageId": "not-a-stage"}, 400),
        ({"pipelineId": "nosuchpipeline000000"}, 400),
        ({"contactId": "nosuchcontact0000000"}, 404),
        ({"monetaryValue": "100"}, 422),
    ],
)
def test_create_validation(api, loc, pipeline, change, status):
    body = {
        "pipelineId": pipeline["id"],
        "locationId": loc,
        "name": "X",
        "status": "open",
        "contactId": contact(api, loc, "v@example.com"),
        **change,
    }
    assert api.post("/opportunities/", json=body).status_code == status


def test_update_rejects_location_id(api, loc, pipeline):
    opp = create(api, loc, pipeline, contact(api, loc, "u@example.com"))
    r = api.put(f"/opportunities/{opp['id']}", json={"locationId": loc, "name": "Y"})
    assert r.status_code == 422
    assert r.json()["message"] == ["property locationId should not exist"]


def test_duplicate_opportunity_for_a_contact_in_a_pipeline(crm_sandbox, api, loc, pipeline):
    cid = contact(api, loc, "dup@example.com")
    create(api, loc, pipeline, cid)
    body = {"pipelineId": pipeline["id"], "locationId": loc, "name": "Again", "status": "open", "contactId": cid}
    r = api.post("/opportunities/", json=body)
    assert r.status_code == 400
    assert r.json()["message"] == "Can not create duplicate opportunity for the contact."
    other = crm_sandbox.add_pipeline(loc, "Follow-up", ["Call", "Done"])
    assert api.post("/opportunities/", json={**body, "pipelineId": other["id"]}).status_code == 201
    crm_sandbox.set_location_settings(loc, allowDuplicateOpportunity=True)
    assert api.post("/opportunities/", json=body).status_code == 201


def test_opportunity_custom_fields(api, loc, pipeline):
    fid = api.post(
        f"/locations/{loc}/customFields",
        json={"name": "Financed Amount", "dataType": "MONETORY", "model": "opportunity"},
    ).json()["customField"]["id"]
    contact_field = api.post(f"/locations/{loc}/customFields", json={"name": "C", "dataType": "TEXT"}).json()
    opp = create(
        api, loc, pipeline, contact(api, loc, "cf@example.com"), customFields=[{"id": fid, "field_value": 99.5}]
    )
    assert opp["customFields"] == [{"id": fid, "fieldValue": 99.5}]
    wrong_model = [{"id": contact_field["customField"]["id"], "field_value": "x"}]
    assert api.put(f"/opportunities/{opp['id']}", json={"customFields": wrong_model}).status_code == 422


def test_search(crm_sandbox_factory):
    crm = crm_sandbox_factory(rate_limits={"enabled": False})
    api, loc = crm.client(0), crm.location(0).id
    pipeline = api.get("/opportunities/pipelines", params={"locationId": loc}).json()["pipelines"][0]
    ids = []
    for i in range(25):
        opp = create(api, loc, pipeline, contact(api, loc, f"s{i}@example.com"), name=f"Opp {i}")
        ids.append(opp["id"])
        if i % 5 == 0:
            api.put(f"/opportunities/{opp['id']}/status", json={"status": "lost"})

    def search(**params):
        r = api.get("/opportunities/search", params={"location_id": loc, **params})
        assert r.status_code == 200, r.text
        return r.json()

    seen, page = [], 1
    for _ in range(5):  # bounded: a paging bug fails instead of looping
        result = search(limit=10, page=page)
        assert result["meta"]["total"] == 25
        seen += [o["id"] for o in result["opportunities"]]
        if result["meta"]["nextPage"] is None:
            break
        page = result["meta"]["nextPage"]
    assert len(seen) == len(set(seen)) == 25

    seen, cursor = [], {}
    for _ in range(6):
        result = search(limit=7, **cursor)
        seen += [o["id"] for o in result["opportunities"]]
        if not result["meta"]["startAfterId"]:
            break
        cursor = {"startAfterId": result["meta"]["startAfterId"], "startAfter": result["meta"]["startAfter"]}
    assert len(seen) == len(set(seen)) == 25

    assert search(status="lost")["meta"]["total"] == 5
    assert search(status="open", limit=100)["meta"]["total"] == 20
    assert search(status="all")["meta"]["total"] == 25
    one = search(contact_id=api.get(f"/opportunities/{ids[3]}").json()["opportunity"]["contactId"])
    assert [o["id"] for o in one["opportunities"]] == [ids[3]]
    assert search(pipeline_id=pipeline["id"], pipeline_stage_id=pipeline["stages"][1]["id"])["meta"]["total"] == 0
    assert search(q="Opp 1", limit=100)["meta"]["total"] == 11  # Opp 1, Opp 10..19
    assert api.get("/opportunities/search", params={"location_id": loc, "limit": 101}).status_code == 422
    assert api.get("/opportunities/search", params={"locationId": loc}).status_code == 422  # snake_case only
    assert api.get("/opportunities/search", params={"location_id": crm.location(1).id}).status_code == 403


def test_other_locations_opportunity_is_403(crm_sandbox, api, loc, pipeline):
    opp = create(api, loc, pipeline, contact(api, loc, "x@example.com"))
    other = crm_sandbox.client(1)
    assert other.get(f"/opportunities/{opp['id']}").status_code == 403
    assert other.put(f"/opportunities/{opp['id']}/status", json={"status": "won"}).status_code == 403
    assert api.delete(f"/opportunities/{opp['id']}").json() == {"succeded": True}
    assert api.get(f"/opportunities/{opp['id']}").status_code == 404
