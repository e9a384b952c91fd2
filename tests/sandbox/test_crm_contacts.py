"""Contacts: upsert matching rules and quirks, create/get/update/delete, value validation, lookups."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests


@pytest.fixture
def api(crm_sandbox):
    return crm_sandbox.client(0)


@pytest.fixture
def loc(crm_sandbox):
    return crm_sandbox.location(0).id


def upsert(api, loc, **fields):
    r = api.post("/contacts/upsert", json={"locationId": loc, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def test_upsert_creates_then_updates(api, loc):
    first = upsert(api, loc, email="Jane.Doe@Example.com", firstName="Jane", phone="(555) 201-0001")
    assert first["new"] is True
    assert first["traceId"]
    contact = first["contact"]
    assert contact["phone"] == "+15552010001"  # stored as E.164
    assert contact["type"] == "lead"
    assert contact["locationId"] == loc

    second = upsert(api, loc, email="jane.doe@example.com", lastName="Doe")  # emails match case-insensitively
    assert second["new"] is False
    assert second["contact"]["id"] == contact["id"]
    assert second["contact"]["firstName"] == "Jane" and second["contact"]["lastName"] == "Doe"

    third = upsert(api, loc, phone="+1 555 201 0001", firstName="Janet")  # then phone, by digits
    assert third["new"] is False and third["contact"]["id"] == contact["id"]


def test_email_wins_over_phone_and_the_phone_is_silently_dropped(api, loc):
    a = upsert(api, loc, email="a@example.com", phone="+15550000001")["contact"]
    b = upsert(api, loc, email="b@example.com", phone="+15550000002")["contact"]

    result = upsert(api, loc, email="a@example.com", phone="+15550000002", firstName="Alice")
    assert result["new"] is False
    assert result["contact"]["id"] == a["id"]
    assert result["contact"]["phone"] == "+15550000001"  # B's phone was not moved onto A
    assert result["contact"]["firstName"] == "Alice"
    assert api.get(f"/contacts/{b['id']}").json()["contact"]["phone"] == "+15550000002"


def test_phone_match_updates_email(api, loc):
    a = upsert(api, loc, phone="+15550000009")["contact"]
    result = upsert(api, loc, email="new@example.com", phone="+15550000009")
    assert result["new"] is False and result["contact"]["id"] == a["id"]
    assert result["contact"]["email"] == "new@example.com"


def test_tags_on_upsert_replace_all_tags(api, loc):
    upsert(api, loc, email="t@example.com", tags=["Cherry-Approved", "vip"])
    result = upsert(api, loc, email="t@example.com", tags=["cherry-applied"])
    assert result["contact"]["tags"] == ["cherry-applied"]
    untouched = upsert(api, loc, email="t@example.com", firstName="No tags sent")
    assert untouched["contact"]["tags"] == ["cherry-applied"]


def test_tags_are_stored_lower_case_and_deduplicated(api, loc):
    result = upsert(api, loc, email="t@example.com", tags=[" VIP ", "vip", "Cherry Approved"])
    assert result["contact"]["tags"] == ["vip", "cherry approved"]


def test_create_refuses_duplicates_with_the_existing_id(api, loc):
    r = api.post("/contacts/", json={"locationId": loc, "email": "dup@example.com", "firstName": "One"})
    assert r.status_code == 201, r.text
    existing = r.json()["contact"]["id"]
    r = api.post("/contacts/", json={"locationId": loc, "email": "DUP@example.com"})
    assert r.status_code == 400
    body = r.json()
    assert body["message"] == "This location does not allow duplicated contacts."
    assert body["meta"]["contactId"] == existing
    assert body["meta"]["matchingField"] == "email"


def test_duplicates_allowed_location(crm_sandbox, api, loc):
    crm_sandbox.set_location_settings(loc, allowDuplicateContact=True)
    first = upsert(api, loc, email="same@example.com")["contact"]
    again = upsert(api, loc, email="same@example.com", createNewIfDuplicateAllowed=True)
    assert again["new"] is True and again["contact"]["id"] != first["id"]
    plain = upsert(api, loc, email="same@example.com")  # without the flag: ordinary upsert of the oldest
    assert plain["new"] is False and plain["contact"]["id"] == first["id"]


def test_phone_priority_setting(crm_sandbox, api, loc):
    crm_sandbox.set_location_settings(loc, duplicateContactPriority=["phone", "email"])
    a = upsert(api, loc, email="a@example.com", phone="+15550000001")["contact"]
    b = upsert(api, loc, email="b@example.com", phone="+15550000002")["contact"]
    result = upsert(api, loc, email="a@example.com", phone="+15550000002")
    assert result["contact"]["id"] == b["id"]
    assert result["contact"]["email"] == "b@example.com"  # the email (now second priority) is dropped
    assert api.get(f"/contacts/{a['id']}").status_code == 200


def test_get_update_delete(api, loc):
    contact = upsert(api, loc, email="x@example.com", firstName="X", tags=["a", "b"])["contact"]
    got = api.get(f"/contacts/{contact['id']}").json()["contact"]
    assert got["email"] == "x@example.com" and got["tags"] == ["a", "b"]

    r = api.put(f"/contacts/{contact['id']}", json={"lastName": "Ray", "tags": ["c"], "city": "Austin"})
    assert r.status_code == 200, r.text
    updated = r.json()["contact"]
    assert updated["lastName"] == "Ray" and updated["tags"] == ["c"] and updated["city"] == "Austin"
    assert updated["firstName"] == "X"

    assert api.delete(f"/contacts/{contact['id']}").json() == {"succeded": True}
    assert api.get(f"/contacts/{contact['id']}").status_code == 404
    assert api.delete(f"/contacts/{contact['id']}").status_code == 404


def test_update_onto_another_contacts_email_is_a_duplicate(api, loc):
    upsert(api, loc, email="taken@example.com")
    other = upsert(api, loc, email="free@example.com")["contact"]
    r = api.put(f"/contacts/{other['id']}", json={"email": "taken@example.com"})
    assert r.status_code == 400
    assert "duplicated" in r.json()["message"]


@pytest.mark.parametrize("given", ["1990-09-25", "09/25/1990", "1990/09/25", "1990-09-25T00:00:00.000Z"])
def test_date_of_birth_formats_are_normalised(api, loc, given):
    contact = upsert(api, loc, email="dob@example.com", dateOfBirth=given)["contact"]
    assert contact["dateOfBirth"] == "1990-09-25"


@pytest.mark.parametrize("bad", ["25/09/1990", "1990-13-01", "yesterday"])
def test_bad_dates_of_birth_are_422(api, loc, bad):
    r = api.post("/contacts/upsert", json={"locationId": loc, "email": "dob@example.com", "dateOfBirth": bad})
    assert r.status_code == 422


@pytest.mark.parametrize(("field", "value"), [("email", "not-an-email"), ("phone", "12")])
def test_bad_identifiers_are_422(api, loc, field, value):
    r = api.post("/contacts/upsert", json={"locationId": loc, field: value})
    assert r.status_code == 422


@pytest.fixture
def fields(crm_sandbox, api, loc):
    """One field per type, by type name -> id."""
    spec = {
        "TEXT": {},
        "LARGE_TEXT": {},
        "SINGLE_OPTIONS": {"options": ["Approved", "Declined"]},
        "RADIO": {"options": ["Yes", "No"]},
        "NUMERICAL": {},
        "MONETORY": {},
        "DATE": {},
        "CHECKBOX": {"options": ["A", "B"]},
        "MULTIPLE_OPTIONS": {"options": ["X", "Y", "Z"]},
    }
    out = {}
    for data_type, extra in spec.items():
        r = api.post(f"/locations/{loc}/customFields", json={"name": f"f {data_type}", "dataType": data_type, **extra})
        out[data_type] = r.json()["customField"]["id"]
    return out


GOOD_VALUES = [
    ("TEXT", "hello", "hello"),
    ("LARGE_TEXT", "long text", "long text"),
    ("SINGLE_OPTIONS", "Approved", "Approved"),
    ("RADIO", "No", "No"),
    ("NUMERICAL", 42, 42),
    ("MONETORY", 1234.5, 1234.5),
    ("DATE", "2026-03-01", 1772323200000),
    ("DATE", 1772323200000, 1772323200000),
    ("CHECKBOX", ["A"], ["A"]),
    ("MULTIPLE_OPTIONS", ["X", "Z"], ["X", "Z"]),
]
BAD_VALUES = [
    ("TEXT", 5),
    ("SINGLE_OPTIONS", "approved"),  # options are case-sensitive
    ("SINGLE_OPTIONS", ["Approved"]),
    ("RADIO", "Maybe"),
    ("NUMERICAL", "42"),
    ("MONETORY", "1234.50"),
    ("MONETORY", True),
    ("DATE", "03/01/2026"),
    ("CHECKBOX", "A"),
    ("MULTIPLE_OPTIONS", ["X", "W"]),
]


@pytest.mark.parametrize(("data_type", "value", "stored"), GOOD_VALUES)
def test_custom_field_values_by_type(api, loc, fields, data_type, value, stored):
    contact = upsert(api, loc, email="cf@example.com", customFields=[{"id": fields[data_type], "field_value": value}])
    assert contact["contact"]["customFields"] == [{"id": fields[data_type], "value": stored}]


@pytest.mark.parametrize(("data_type", "value"), BAD_VALUES)
def test_custom_field_values_of_the_wrong_type_are_422(api, loc, fields, data_type, value):
    r = api.post(
        "/contacts/upsert",
        json={
            "locationId": loc,
            "email": "cf@example.com",
            "customFields": [{"id": fields[data_type], "value": value}],
        },
    )
    assert r.status_code == 422, r.text
    assert data_type in r.json()["message"][0]
    assert api.get("/contacts/search/duplicate", params={"locationId": loc, "email": "cf@example.com"}).json() == {
        "contact": None
    }


def test_custom_fields_by_key_and_value_aliases(api, loc, fields):
    contact = upsert(
        api,
        loc,
        email="k@example.com",
        customFields=[
            {"key": "contact.f_text", "field_value": "a"},
            {"key": "f_numerical", "fieldValue": 7},
            {"id": fields["MONETORY"], "value": 9.99},
        ],
    )["contact"]
    values = {cf["id"]: cf["value"] for cf in contact["customFields"]}
    assert values == {fields["TEXT"]: "a", fields["NUMERICAL"]: 7, fields["MONETORY"]: 9.99}
    assert all(set(cf) == {"id", "value"} for cf in contact["customFields"])  # no key on read

    # Other values are kept when one is written; an empty value clears a field.
    again = upsert(api, loc, email="k@example.com", customFields=[{"id": fields["TEXT"], "field_value": ""}])
    assert {cf["id"] for cf in again["contact"]["customFields"]} == {fields["NUMERICAL"], fields["MONETORY"]}


def test_unknown_custom_field_is_422(api, loc, fields):
    for ref in ({"id": "nosuchfieldid0000000"}, {"key": "contact.nope"}):
        r = api.post(
            "/contacts/upsert",
            json={"locationId": loc, "email": "u@example.com", "customFields": [{**ref, "value": "x"}]},
        )
        assert r.status_code == 422


def test_another_locations_field_id_is_422(crm_sandbox, api, loc):
    other = crm_sandbox.location(1).id
    field = crm_sandbox.client(1).post(f"/locations/{other}/customFields", json={"name": "T", "dataType": "TEXT"})
    r = api.post(
        "/contacts/upsert",
        json={"locationId": loc, "customFields": [{"id": field.json()["customField"]["id"], "value": "x"}]},
    )
    assert r.status_code == 422


def test_duplicate_lookup_email_first_then_phone(api, loc):
    by_email = upsert(api, loc, email="Look+Up@example.com", phone="+15550001111")["contact"]
    by_phone = upsert(api, loc, email="other@example.com", phone="+447911123456")["contact"]

    def lookup(**params):
        r = api.get("/contacts/search/duplicate", params={"locationId": loc, **params})
        assert r.status_code == 200
        return r.json()["contact"]

    assert lookup(email="look+up@example.com")["id"] == by_email["id"]  # requests encodes + as %2B
    assert lookup(email="look+up@example.com", number="+447911123456")["id"] == by_email["id"]
    assert lookup(email="nobody@example.com", number="+447911123456")["id"] == by_phone["id"]
    assert lookup(number="+15550001111")["id"] == by_email["id"]
    assert lookup(email="nobody@example.com") is None


def test_duplicate_lookup_with_a_raw_plus_misses(crm_sandbox, api, loc):
    upsert(api, loc, email="look+up@example.com", phone="+447911123456")
    headers = crm_sandbox.headers(0)
    # A raw '+' in a query string means a space: the sandbox reads what the real server would read.
    raw = requests.get(
        crm_sandbox.url(f"/contacts/search/duplicate?locationId={loc}&email=look+up@example.com"),
        headers=headers,
        timeout=5,
    )
    assert raw.json() == {"contact": None}
    raw = requests.get(
        crm_sandbox.url(f"/contacts/search/duplicate?locationId={loc}&number=+447911123456"), headers=headers, timeout=5
    )
    assert raw.json() == {"contact": None}
    encoded = requests.get(
        crm_sandbox.url(f"/contacts/search/duplicate?locationId={loc}&number=%2B447911123456"),
        headers=headers,
        timeout=5,
    )
    assert encoded.json()["contact"]["phone"] == "+447911123456"


def test_deleted_field_values_disappear_from_reads(api, loc, fields):
    contact = upsert(api, loc, email="d@example.com", customFields=[{"id": fields["TEXT"], "value": "v"}])["contact"]
    api.delete(f"/locations/{loc}/customFields/{fields['TEXT']}")
    assert api.get(f"/contacts/{contact['id']}").json()["contact"]["customFields"] == []


def test_concurrent_upserts_of_one_person_make_one_contact(crm_sandbox, loc):
    clients = [crm_sandbox.client(0) for _ in range(8)]

    def one(i):
        body = {"locationId": loc, "email": "race@example.com", "tags": [f"t{i}"]}
        return clients[i % 8].post("/contacts/upsert", json=body).json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(24)))
    assert sum(r["new"] for r in results) == 1
    assert len({r["contact"]["id"] for r in results}) == 1
    assert crm_sandbox.location_state(loc, lists=False)["counts"]["contacts"] == 1


def _typed_fields(api, loc) -> dict[str, str]:
    ids = {}
    for data_type, extra in (("TEXT", {}), ("MONETORY", {}), ("DATE", {}), ("SINGLE_OPTIONS", {"options": ["A", "B"]})):
        r = api.post(
            f"/locations/{loc}/customFields", json={"name": f"clear {data_type}", "dataType": data_type, **extra}
        )
        assert r.status_code == 201, r.text
        ids[data_type] = r.json()["customField"]["id"]
    return ids


@pytest.mark.parametrize("data_type", ["TEXT", "MONETORY", "DATE", "SINGLE_OPTIONS"])
def test_an_empty_string_clears_a_custom_field_of_any_type(api, loc, data_type):
    fields = _typed_fields(api, loc)
    value = {"TEXT": "t", "MONETORY": 12.5, "DATE": "2026-03-01", "SINGLE_OPTIONS": "A"}[data_type]
    contact = upsert(
        api, loc, email="clear@example.com", customFields=[{"id": fields[data_type], "field_value": value}]
    )
    contact_id = contact["contact"]["id"]
    assert [cf["id"] for cf in contact["contact"]["customFields"]] == [fields[data_type]]
    r = api.put(f"/contacts/{contact_id}", json={"customFields": [{"id": fields[data_type], "field_value": ""}]})
    assert r.status_code == 200, r.text
    assert api.get(f"/contacts/{contact_id}").json()["contact"]["customFields"] == []
    # Clearing what is already empty is accepted and changes nothing.
    r = api.put(f"/contacts/{contact_id}", json={"customFields": [{"id": fields[data_type], "field_value": ""}]})
    assert r.status_code == 200 and api.get(f"/contacts/{contact_id}").json()["contact"]["customFields"] == []


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({"field_value": None}, id="null"),
        pytest.param({}, id="no-value"),
        pytest.param({"field_value": " "}, id="blank-for-money"),
        pytest.param({"field_value": []}, id="empty-list-for-money"),
    ],
)
def test_other_forms_of_clearing_are_refused_and_change_nothing(api, loc, item):
    fields = _typed_fields(api, loc)
    contact = upsert(api, loc, email="keep@example.com", customFields=[{"id": fields["MONETORY"], "field_value": 99}])
    contact_id = contact["contact"]["id"]
    r = api.put(f"/contacts/{contact_id}", json={"customFields": [{"id": fields["MONETORY"], **item}]})
    assert r.status_code == 422, r.text
    assert api.get(f"/contacts/{contact_id}").json()["contact"]["customFields"] == [
        {"id": fields["MONETORY"], "value": 99}
    ]
