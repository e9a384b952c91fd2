"""POST /contacts/search: paging with page and with searchAfter, filters, sort, index lag."""

from __future__ import annotations

import time

import pytest

from sandbox.crm.testing import start_crm_sandbox

N = 137  # not a multiple of any page size used below


@pytest.fixture(scope="module")
def crm():
    """One sandbox for the read-only tests of this module (seeding N contacts per test would be slow)."""
    sandbox = start_crm_sandbox(locations=2, rate_limits={"enabled": False})
    yield sandbox
    sandbox.stop(wait=False)


@pytest.fixture(scope="module")
def api(crm):
    return crm.client(0)


@pytest.fixture(scope="module")
def loc(crm):
    return crm.location(0).id


@pytest.fixture(scope="module")
def people(api, loc):
    """N contacts; every third is tagged 'vip', every fifth has a date of birth. Tests must not change them."""
    ids = []
    for i in range(N):
        body = {
            "locationId": loc,
            "email": f"person{i:03d}@example.com",
            "firstName": f"First{i % 7}",
            "lastName": f"Last{i:03d}",
            "phone": f"+1555300{i:04d}",
            "tags": ["vip"] if i % 3 == 0 else [],
        }
        if i % 5 == 0:
            body["dateOfBirth"] = "1980-01-0" + str(1 + i % 9)
        ids.append(api.post("/contacts/upsert", json=body).json()["contact"]["id"])
    return ids


def search(api, loc, **body):
    r = api.post("/contacts/search", json={"locationId": loc, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_page_paging_reaches_every_contact_once(api, loc, people):
    seen = []
    for page in range(1, N // 20 + 3):  # bounded, so a paging bug fails instead of looping
        result = search(api, loc, pageLimit=20, page=page)
        assert result["total"] == N
        if not result["contacts"]:
            break
        seen += [c["id"] for c in result["contacts"]]
    assert len(seen) == len(set(seen)) == N
    assert set(seen) == set(people)


def test_search_after_paging_reaches_every_contact_once(api, loc, people):
    seen, cursor = [], None
    for _ in range(N // 25 + 3):
        body = {"pageLimit": 25}
        if cursor is not None:
            body["searchAfter"] = cursor
        result = search(api, loc, **body)
        if not result["contacts"]:
            break
        seen += [c["id"] for c in result["contacts"]]
        cursor = result["contacts"][-1]["searchAfter"]
    assert len(seen) == len(set(seen)) == N


def test_sorting_and_search_after_with_a_custom_sort(api, loc, people):
    sort = [{"field": "lastNameLowerCase", "direction": "asc"}]
    first = search(api, loc, pageLimit=50, sort=sort)
    names = [c["lastName"] for c in first["contacts"]]
    assert names == sorted(names) and names[0] == "Last000"
    rest = search(api, loc, pageLimit=500, sort=sort, searchAfter=first["contacts"][-1]["searchAfter"])
    assert [c["lastName"] for c in rest["contacts"]][0] == "Last050"
    assert len(rest["contacts"]) == N - 50
    newest_first = search(api, loc, pageLimit=1)["contacts"][0]
    assert newest_first["id"] == people[-1]  # default: dateAdded descending


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"field": "tags", "operator": "eq", "value": "vip"}], {i for i in range(N) if i % 3 == 0}),
        ([{"field": "tags", "operator": "not_eq", "value": "vip"}], {i for i in range(N) if i % 3}),
        ([{"field": "email", "operator": "eq", "value": "PERSON007@example.com"}], {7}),
        ([{"field": "phone", "operator": "eq", "value": "(555) 300-0011"}], {11}),
        ([{"field": "firstNameLowerCase", "operator": "eq", "value": "first3"}], {i for i in range(N) if i % 7 == 3}),
        ([{"field": "lastNameLowerCase", "operator": "contains", "value": "st12"}], set(range(120, 130))),
        ([{"field": "dateOfBirth", "operator": "exists"}], {i for i in range(N) if i % 5 == 0}),
        ([{"field": "dateOfBirth", "operator": "not_exists"}], {i for i in range(N) if i % 5}),
        ([{"field": "dateOfBirth", "operator": "eq", "value": "01/01/1980"}], {i for i in range(N) if i % 45 == 0}),
        (
            [
                {"field": "tags", "operator": "eq", "value": "vip"},
                {"field": "dateOfBirth", "operator": "exists"},
            ],
            {i for i in range(N) if i % 15 == 0},
        ),
        (
            [
                {
                    "group": "OR",
                    "filters": [
                        {"field": "email", "operator": "eq", "value": "person001@example.com"},
                        {"field": "email", "operator": "eq", "value": "person002@example.com"},
                    ],
                }
            ],
            {1, 2},
        ),
    ],
)
def test_filters(api, loc, people, filters, expected):
    result = search(api, loc, pageLimit=500, filters=filters)
    assert {people.index(c["id"]) for c in result["contacts"]} == expected
    assert result["total"] == len(expected)


def test_filter_by_id_and_custom_field(crm_sandbox_factory):
    crm = crm_sandbox_factory()
    api, loc = crm.client(0), crm.location(0).id
    people = [
        api.post("/contacts/upsert", json={"locationId": loc, "email": f"p{i}@example.com"}).json()["contact"]["id"]
        for i in range(10)
    ]
    field = api.post(f"/locations/{loc}/customFields", json={"name": "Cherry Status", "dataType": "TEXT"}).json()
    fid = field["customField"]["id"]
    api.put(f"/contacts/{people[4]}", json={"customFields": [{"id": fid, "field_value": "approved"}]})
    api.put(f"/contacts/{people[9]}", json={"customFields": [{"id": fid, "field_value": "declined"}]})
    hit = search(
        api, loc, pageLimit=10, filters=[{"field": f"customFields.{fid}", "operator": "eq", "value": "approved"}]
    )
    assert [c["id"] for c in hit["contacts"]] == [people[4]]
    has = search(api, loc, pageLimit=10, filters=[{"field": f"customFields.{fid}", "operator": "exists"}])
    assert {c["id"] for c in has["contacts"]} == {people[4], people[9]}
    due = api.post(f"/locations/{loc}/customFields", json={"name": "Due", "dataType": "DATE"}).json()["customField"]
    api.put(f"/contacts/{people[5]}", json={"customFields": [{"id": due["id"], "field_value": "2026-03-01"}]})
    api.put(f"/contacts/{people[6]}", json={"customFields": [{"id": due["id"], "field_value": "2026-05-01"}]})
    march = {"gte": "2026-03-01", "lt": "2026-04-01"}
    hit = search(
        api, loc, pageLimit=10, filters=[{"field": f"customFields.{due['id']}", "operator": "range", "value": march}]
    )
    assert [c["id"] for c in hit["contacts"]] == [people[5]]
    by_id = search(api, loc, pageLimit=10, filters=[{"field": "id", "operator": "eq", "value": [people[1], people[2]]}])
    assert {c["id"] for c in by_id["contacts"]} == {people[1], people[2]}


def test_query_text(api, loc, people):
    result = search(api, loc, pageLimit=10, query="person010")
    assert [c["id"] for c in result["contacts"]] == [people[10]]
    result = search(api, loc, pageLimit=10, query="555-300-0012")
    assert [c["id"] for c in result["contacts"]] == [people[12]]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"pageLimit": 501}, 422),
        ({"pageLimit": 0}, 422),
        ({"page": 1}, 422),  # pageLimit is required
        ({"pageLimit": 10, "page": 1, "searchAfter": [1, "x"]}, 422),
        ({"pageLimit": 10, "searchAfter": [1]}, 422),  # sort values and the id
        ({"pageLimit": 500, "page": 21}, 400),  # past the 10,000-record window
        ({"pageLimit": 10, "filters": [{"field": "shoeSize", "operator": "eq", "value": 9}]}, 422),
        ({"pageLimit": 10, "filters": [{"field": "email", "operator": "like", "value": "a"}]}, 422),
        ({"pageLimit": 10, "query": "x" * 76}, 422),
    ],
)
def test_invalid_searches(api, loc, body, status):
    r = api.post("/contacts/search", json={"locationId": loc, **body})
    assert r.status_code == status, r.text


def test_search_lags_behind_writes_but_duplicate_lookup_does_not(crm_sandbox_factory):
    crm = crm_sandbox_factory(search_lag_seconds=0.25)
    api, loc = crm.client(0), crm.location(0).id
    contact = api.post("/contacts/upsert", json={"locationId": loc, "email": "lag@example.com"}).json()["contact"]
    lookup = api.get("/contacts/search/duplicate", params={"locationId": loc, "email": "lag@example.com"})
    assert lookup.json()["contact"]["id"] == contact["id"]
    assert search(api, loc, pageLimit=10)["total"] == 0

    time.sleep(0.3)
    assert [c["id"] for c in search(api, loc, pageLimit=10)["contacts"]] == [contact["id"]]

    # An update is seen with its old values until the index catches up.
    api.put(f"/contacts/{contact['id']}", json={"tags": ["late"]})
    vip = [{"field": "tags", "operator": "eq", "value": "late"}]
    assert search(api, loc, pageLimit=10, filters=vip)["total"] == 0
    time.sleep(0.3)
    assert search(api, loc, pageLimit=10, filters=vip)["total"] == 1

    # A deleted contact lingers in search for the lag, then goes.
    api.delete(f"/contacts/{contact['id']}")
    assert search(api, loc, pageLimit=10)["total"] == 1
    time.sleep(0.3)
    assert search(api, loc, pageLimit=10)["total"] == 0


def test_search_is_per_location(crm, api, loc, people):
    other = crm.client(1)
    r = other.post("/contacts/search", json={"locationId": crm.location(1).id, "pageLimit": 10})
    assert r.json() == {"contacts": [], "total": 0}
    assert other.post("/contacts/search", json={"locationId": loc, "pageLimit": 10}).status_code == 403
