"""AesthetixCrmHook against the CRM sandbox: every operation the sync uses, paging to the end, typed errors."""

from __future__ import annotations

import pytest

from cherry_sync.hooks import errors
from sandbox.crm import contact_writes, opportunities
from sandbox.crm.schemas import CreateContact, CreateOpportunity
from tests.hooks.conftest import ROOMY, crm_hook


def _state(crm, which=0) -> dict:
    return crm.location_state(crm.location(which).id)


def seed_contacts(crm, count: int, which: int = 0) -> list[str]:
    """Create `count` contacts straight in the sandbox state (fast; the API path is tested elsewhere)."""
    state = crm.state
    loc = state.locations[crm.location(which).id]
    ids = []
    with state.lock:
        for i in range(count):
            body = CreateContact(locationId=loc.id, firstName=f"Seed{i:05d}", email=f"seed{i:05d}@example.org")
            ids.append(contact_writes.create(state, loc, body).id)
    return ids


# -- custom fields ------------------------------------------------------------------------------


def test_custom_fields_list_create_update(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    assert hook.list_custom_fields() == []
    body = {
        "name": "Cherry Test Status",
        "dataType": "SINGLE_OPTIONS",
        "model": "contact",
        "fieldKey": "contact.cherry_test_status",
        "options": ["Active", "Inactive"],
    }
    created = hook.create_custom_field(body)
    assert created["id"] and created["fieldKey"] == "contact.cherry_test_status"
    assert created["picklistOptions"] == ["Active", "Inactive"]

    updated = hook.update_custom_field(
        created["id"], {"name": "Cherry Test Status", "options": ["Active", "Inactive", "Expired"]}
    )
    assert updated["picklistOptions"] == ["Active", "Inactive", "Expired"]
    listed = hook.list_custom_fields()
    assert [f["id"] for f in listed] == [created["id"]]
    assert listed[0]["picklistOptions"] == ["Active", "Inactive", "Expired"]
    assert hook.list_custom_fields(model="opportunity") == []


# -- contacts -----------------------------------------------------------------------------------


def test_upsert_creates_then_updates(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    contact, created = hook.upsert_contact({"firstName": "Ana", "email": "ana.upsert@example.org"})
    assert created is True and contact["id"]
    again, created_again = hook.upsert_contact({"lastName": "Lopez", "email": "ANA.upsert@example.org"})
    assert created_again is False and again["id"] == contact["id"]
    assert hook.get_contact(contact["id"])["lastName"] == "Lopez"
    assert _state(crm_sandbox)["counts"]["contacts"] == 1


def test_upsert_and_update_refuse_tags(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    with pytest.raises(ValueError, match="tags"):
        hook.upsert_contact({"email": "t@example.org", "tags": ["x"]})
    with pytest.raises(ValueError, match="tags"):
        hook.update_contact("abc", {"tags": ["x"]})
    assert crm_sandbox.stats()["total"] == 0  # refused before anything was sent


def test_get_and_update_contact(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    contact, _ = hook.upsert_contact({"firstName": "Bo", "email": "bo@example.org"})
    updated = hook.update_contact(contact["id"], {"firstName": "Bob", "city": "Austin"})
    assert updated["firstName"] == "Bob"
    fetched = hook.get_contact(contact["id"])
    assert fetched["firstName"] == "Bob" and fetched["city"] == "Austin"
    assert hook.get_contact("A" * 20) is None  # 404 -> None


def test_find_duplicate_by_email_and_by_e164_phone(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    uk, _ = hook.upsert_contact({"firstName": "Uk", "phone": "+447911123456"})
    us, _ = hook.upsert_contact({"firstName": "Us", "email": "us.person@example.org"})
    assert hook.find_duplicate(email="US.person@example.org")["id"] == us["id"]
    # Unencoded, the '+' would arrive as a space and the number would be read as a US one: no match.
    assert hook.find_duplicate(phone="+447911123456")["id"] == uk["id"]
    assert hook.find_duplicate(email="nobody@example.org") is None
    assert hook.find_duplicate(email="nobody@example.org", phone="+447911123456")["id"] == uk["id"]
    assert hook.find_duplicate() is None


@pytest.mark.parametrize("page_limit", [500, 37])
def test_search_contacts_reads_every_page(crm_sandbox, page_limit):
    seeded = seed_contacts(crm_sandbox, 1200)
    hook = crm_hook(crm_sandbox, burst_limit=1000, retry=ROOMY)
    found = [c["id"] for c in hook.search_contacts(page_limit=page_limit)]
    assert len(found) == len(set(found)) == 1200  # total == distinct: pages neither overlap nor skip
    assert set(found) == set(seeded)
    assert hook.calls["POST /contacts/search"] == 1200 // page_limit + 1


def test_search_contacts_with_filters(crm_sandbox):
    seed_contacts(crm_sandbox, 30)
    hook = crm_hook(crm_sandbox)
    filters = [{"field": "firstName", "operator": "contains", "value": "seed0001"}]
    found = list(hook.search_contacts(filters=filters, page_limit=4))
    assert sorted(c["firstName"] for c in found) == [f"Seed{i:05d}" for i in range(10, 20)]


def test_tags_add_remove_and_bulk(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    a, _ = hook.upsert_contact({"email": "a.tags@example.org"})
    b, _ = hook.upsert_contact({"email": "b.tags@example.org"})
    hook.add_tags(a["id"], ["Cherry", "VIP"])
    hook.remove_tags(a["id"], ["vip"])
    assert hook.get_contact(a["id"])["tags"] == ["cherry"]

    result = hook.bulk_update_tags("add", [a["id"], b["id"]], ["cherry-active"])
    assert result["succeded"] is True and result["errorCount"] == 0
    assert hook.get_contact(b["id"])["tags"] == ["cherry-active"]
    hook.bulk_update_tags("remove", [a["id"], b["id"]], ["cherry-active"])
    assert hook.get_contact(a["id"])["tags"] == ["cherry"]
    with pytest.raises(ValueError):
        hook.bulk_update_tags("replace", [a["id"]], ["x"])
    with pytest.raises(ValueError):
        hook.bulk_update_tags("add", ["x"] * 101, ["x"])


# -- opportunities ------------------------------------------------------------------------------


def test_pipelines_and_opportunities(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    pipeline = hook.list_pipelines()[0]
    contact, _ = hook.upsert_contact({"email": "opp@example.org"})
    opp = hook.create_opportunity(
        {
            "pipelineId": pipeline["id"],
            "contactId": contact["id"],
            "name": "Cherry financing",
            "status": "open",
            "monetaryValue": 1200,
        }
    )
    assert opp["id"] and opp["pipelineStageId"] == pipeline["stages"][0]["id"]
    found = hook.search_opportunities(pipeline_id=pipeline["id"], contact_id=contact["id"])
    assert [o["id"] for o in found] == [opp["id"]]

    stage = pipeline["stages"][1]["id"]
    updated = hook.update_opportunity(opp["id"], {"pipelineStageId": stage, "monetaryValue": 1500})
    assert updated["pipelineStageId"] == stage and updated["monetaryValue"] == 1500
    hook.set_opportunity_status(opp["id"], "won")
    assert hook.search_opportunities(status="won")[0]["id"] == opp["id"]
    assert hook.search_opportunities(status="open") == []


def test_search_opportunities_reads_every_page(crm_sandbox):
    crm_sandbox.set_location_settings(crm_sandbox.location(0).id, allowDuplicateOpportunity=True)
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    pipeline = hook.list_pipelines()[0]
    contact, _ = hook.upsert_contact({"email": "many.opps@example.org"})
    state = crm_sandbox.state
    loc = state.locations[crm_sandbox.location(0).id]
    with state.lock:  # 205 opportunities straight in the sandbox (creation through the hook is tested above)
        for i in range(205):
            body = CreateOpportunity(
                pipelineId=pipeline["id"], locationId=loc.id, name=f"opp {i}", status="open", contactId=contact["id"]
            )
            opportunities.create(state, loc, body)
    ids = [o["id"] for o in hook.search_opportunities(pipeline_id=pipeline["id"])]
    assert len(ids) == len(set(ids)) == 205
    assert hook.calls["GET /opportunities/search"] == 3


def test_opportunity_pages_carry_the_search_total(crm_sandbox):
    crm_sandbox.set_location_settings(crm_sandbox.location(0).id, allowDuplicateOpportunity=True)
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    pipeline = hook.list_pipelines()[0]
    contact, _ = hook.upsert_contact({"email": "total.opps@example.org"})
    state = crm_sandbox.state
    loc = state.locations[crm_sandbox.location(0).id]
    with state.lock:
        for i in range(130):
            body = CreateOpportunity(
                pipelineId=pipeline["id"], locationId=loc.id, name=f"opp {i}", status="open", contactId=contact["id"]
            )
            opportunities.create(state, loc, body)
    pages = list(hook.iter_opportunity_pages(pipeline_id=pipeline["id"]))
    assert [(len(page), total) for page, total in pages] == [(100, 130), (30, 130)]
    assert hook.calls["GET /opportunities/search"] == 2


# -- media and conversations --------------------------------------------------------------------


def test_media_folders_and_uploads(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    folder = hook.create_folder("Cherry")
    child = hook.create_folder("Seasonal", parent_id=folder["id"])
    uploaded = hook.upload_file(
        name="spring.png", content=b"\x89PNG fake", content_type="image/png", parent_id=child["id"]
    )
    assert uploaded["fileId"] and crm_sandbox.media_bytes(uploaded["fileId"]) == b"\x89PNG fake"
    assert [f["name"] for f in hook.list_media(kind="folder")] == ["Cherry"]
    assert [f["id"] for f in hook.list_media(kind="folder", parent_id=folder["id"])] == [child["id"]]
    files = hook.list_media(kind="file", parent_id=child["id"])
    assert [f["id"] for f in files] == [uploaded["fileId"]]
    assert hook.list_media(kind="file", parent_id=child["id"], query="autumn") == []


def test_media_listing_pages_to_the_end(crm_sandbox):
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    first = hook.create_folder("folder 000")
    state = crm_sandbox.state
    loc = state.locations[crm_sandbox.location(0).id]
    with state.lock:  # 229 more folders straight in the sandbox, shaped like the one the API made
        for i in range(1, 230):
            folder_id = state.ids.record_id()
            loc.media[folder_id] = {**loc.media[first["id"]], "id": folder_id, "name": f"folder {i:03d}"}
    made = set(loc.media)
    listed = [f["id"] for f in hook.list_media(kind="folder")]
    assert len(listed) == len(set(listed)) == 230 and set(listed) == made
    assert hook.calls["GET /medias/files"] == 3


def test_send_email_uses_the_conversations_version(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    contact, _ = hook.upsert_contact({"email": "mail.me@example.org"})
    sent = hook.send_email({"contactId": contact["id"], "subject": "Hi", "html": "<p>Hello</p>"})
    assert sent["messageId"]
    messages = crm_sandbox.messages(crm_sandbox.location(0).id)
    assert [m["messageId"] for m in messages] == [sent["messageId"]]
    assert hook.get_conn().headers["Version"] == "2021-07-28"  # the per-request header did not stick
    hook.list_custom_fields()  # and the next v2 call still works


# -- errors -------------------------------------------------------------------------------------


def test_422_joins_the_api_messages(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    contact, _ = hook.upsert_contact({"email": "v@example.org"})
    with pytest.raises(errors.ValidationError) as info:
        hook.update_contact(contact["id"], {"favouriteColour": "red", "shoeSize": 9})
    assert info.value.status == 422
    assert info.value.api_message == "property favouriteColour should not exist; property shoeSize should not exist"
    assert hook.calls["PUT /contacts/{id}"] == 1


def test_400_duplicate_is_validation_error(crm_sandbox):
    hook = crm_hook(crm_sandbox)
    contact, _ = hook.upsert_contact({"email": "dup1@example.org"})
    hook.upsert_contact({"email": "dup2@example.org"})
    with pytest.raises(errors.ValidationError) as info:
        hook.update_contact(contact["id"], {"email": "dup2@example.org"})
    assert info.value.status == 400 and "duplicated" in info.value.api_message


def test_wrong_token_and_wrong_location(crm_sandbox):
    bad = crm_hook(crm_sandbox, token="pit-00000000-0000-4000-8000-000000000000")
    with pytest.raises(errors.AuthError):
        bad.list_custom_fields()
    assert bad.test_connection()[0] is False
    other = crm_sandbox.location(1).id
    foreign = crm_hook(crm_sandbox, 0, location_id=other)  # location 0's token, location 1's id
    with pytest.raises(errors.ForbiddenError) as info:
        foreign.list_custom_fields()
    assert info.value.status == 403
    assert crm_hook(crm_sandbox).test_connection() == (True, "Connection successfully tested")


def test_missing_location_id_is_refused():
    from airflow.sdk import Connection

    from cherry_sync.hooks.crm import AesthetixCrmHook

    hook = AesthetixCrmHook("x", connection=Connection(conn_id="x", conn_type="http", host="http://127.0.0.1:1"))
    with pytest.raises(errors.ValidationError, match="location_id"):
        hook.list_pipelines()


# -- location -----------------------------------------------------------------------------------


def test_get_location_reads_the_location_and_its_time_zone(crm_sandbox):
    crm_sandbox.set_location_timezone(crm_sandbox.location(1).id, "Pacific/Honolulu")
    hook = crm_hook(crm_sandbox, 1)

    location = hook.get_location()

    assert location["id"] == crm_sandbox.location(1).id and location["timezone"] == "Pacific/Honolulu"
    assert hook.calls == {"GET /locations/{id}": 1}  # one request, paced like every other
    foreign = crm_hook(crm_sandbox, 0, location_id=crm_sandbox.location(1).id)
    with pytest.raises(errors.ForbiddenError):
        foreign.get_location()
    bad = crm_hook(crm_sandbox, token="pit-00000000-0000-4000-8000-000000000000")
    with pytest.raises(errors.AuthError):
        bad.get_location()
