"""Location custom fields: CRUD, data types, options, field keys."""

from __future__ import annotations

import pytest


def _path(crm, which=0):
    return f"/locations/{crm.location(which).id}/customFields"


def test_create_read_update_delete(crm_sandbox):
    client, path = crm_sandbox.client(0), _path(crm_sandbox)
    r = client.post(path, json={"name": "Cherry Approved Amount", "dataType": "MONETORY", "placeholder": "$"})
    assert r.status_code == 201, r.text
    field = r.json()["customField"]
    assert field["fieldKey"] == "contact.cherry_approved_amount"
    assert field["dataType"] == "MONETORY"
    assert field["model"] == "contact"
    assert field["locationId"] == crm_sandbox.location(0).id
    assert set(field) >= {"id", "name", "fieldKey", "placeholder", "dataType", "position", "picklistOptions"}

    assert client.get(f"{path}/{field['id']}").json()["customField"] == field
    listed = client.get(path, params={"model": "contact"}).json()["customFields"]
    assert [f["id"] for f in listed] == [field["id"]]

    r = client.put(f"{path}/{field['id']}", json={"name": "Approved Amount", "position": 3})
    assert r.status_code == 200, r.text
    assert r.json()["customField"]["name"] == "Approved Amount"
    assert r.json()["customField"]["fieldKey"] == "contact.cherry_approved_amount"  # the key never changes

    r = client.delete(f"{path}/{field['id']}")
    assert r.json() == {"succeded": True}
    assert client.get(f"{path}/{field['id']}").status_code == 404
    assert client.get(path).json()["customFields"] == []


@pytest.mark.parametrize("data_type", ["SINGLE_OPTIONS", "MULTIPLE_OPTIONS", "RADIO", "CHECKBOX"])
def test_option_fields_read_back_as_picklist_options(crm_sandbox, data_type):
    r = crm_sandbox.client(0).post(
        _path(crm_sandbox), json={"name": "Cherry Status", "dataType": data_type, "options": ["Approved", "Declined"]}
    )
    assert r.status_code == 201, r.text
    assert r.json()["customField"]["picklistOptions"] == ["Approved", "Declined"]


def test_option_fields_need_options(crm_sandbox):
    r = crm_sandbox.client(0).post(_path(crm_sandbox), json={"name": "Status", "dataType": "SINGLE_OPTIONS"})
    assert r.status_code == 422


def test_options_can_be_replaced_on_update(crm_sandbox):
    client, path = crm_sandbox.client(0), _path(crm_sandbox)
    field = client.post(path, json={"name": "S", "dataType": "SINGLE_OPTIONS", "options": ["A"]}).json()["customField"]
    r = client.put(f"{path}/{field['id']}", json={"name": "S", "options": ["A", "B"]})
    assert r.json()["customField"]["picklistOptions"] == ["A", "B"]


@pytest.mark.parametrize("data_type", ["MONETARY", "STRING", "money", ""])
def test_unknown_data_types_are_rejected(crm_sandbox, data_type):
    r = crm_sandbox.client(0).post(_path(crm_sandbox), json={"name": "Amount", "dataType": data_type})
    assert r.status_code == 422
    assert any("dataType" in m for m in r.json()["message"])


def test_all_documented_data_types_are_accepted(crm_sandbox):
    client = crm_sandbox.client(0)
    for n, data_type in enumerate(
        ["TEXT", "LARGE_TEXT", "NUMERICAL", "PHONE", "MONETORY", "DATE", "TEXTBOX_LIST", "FILE_UPLOAD", "EMAIL"]
    ):
        r = client.post(_path(crm_sandbox), json={"name": f"Field {n}", "dataType": data_type})
        assert r.status_code == 201, (data_type, r.text)


def test_field_key_prefix_and_duplicates(crm_sandbox):
    client, path = crm_sandbox.client(0), _path(crm_sandbox)
    given = client.post(path, json={"name": "Whatever", "dataType": "TEXT", "fieldKey": "cherry_id"}).json()
    assert given["customField"]["fieldKey"] == "contact.cherry_id"
    prefixed = client.post(path, json={"name": "Other", "dataType": "TEXT", "fieldKey": "contact.cherry_plan"}).json()
    assert prefixed["customField"]["fieldKey"] == "contact.cherry_plan"

    dup = client.post(path, json={"name": "Again", "dataType": "TEXT", "fieldKey": "contact.cherry_id"})
    assert dup.status_code == 400
    assert dup.json()["statusCode"] == 400
    dup_by_name = client.post(path, json={"name": "cherry id", "dataType": "TEXT"})
    assert dup_by_name.status_code == 400

    # Keys are per location: the same key is fine elsewhere.
    other = crm_sandbox.client(1).post(_path(crm_sandbox, 1), json={"name": "Cherry Id", "dataType": "TEXT"})
    assert other.status_code == 201


def test_data_type_and_field_key_cannot_change(crm_sandbox):
    client, path = crm_sandbox.client(0), _path(crm_sandbox)
    field = client.post(path, json={"name": "Amount", "dataType": "NUMERICAL"}).json()["customField"]
    r = client.put(f"{path}/{field['id']}", json={"name": "Amount", "dataType": "TEXT"})
    assert r.status_code == 422
    assert r.json()["message"] == ["property dataType should not exist"]
    r = client.put(f"{path}/{field['id']}", json={"placeholder": "no name"})
    assert r.status_code == 422
    assert r.json()["message"] == ["name should not be empty"]


def test_undocumented_create_properties_are_accepted(crm_sandbox):
    r = crm_sandbox.client(0).post(
        _path(crm_sandbox),
        json={"name": "Plan", "dataType": "TEXT", "description": "Cherry plan id", "parentId": "folderIdXYZ"},
    )
    assert r.status_code == 201
    assert r.json()["customField"]["description"] == "Cherry plan id"


def test_model_filter(crm_sandbox):
    client, path = crm_sandbox.client(0), _path(crm_sandbox)
    client.post(path, json={"name": "C", "dataType": "TEXT"})
    opp = client.post(path, json={"name": "O", "dataType": "TEXT", "model": "opportunity"}).json()["customField"]
    assert opp["fieldKey"] == "opportunity.o"
    assert len(client.get(path, params={"model": "all"}).json()["customFields"]) == 2
    assert [f["name"] for f in client.get(path, params={"model": "opportunity"}).json()["customFields"]] == ["O"]
    assert [f["name"] for f in client.get(path, params={"model": "contact"}).json()["customFields"]] == ["C"]
