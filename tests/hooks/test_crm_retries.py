"""Retries and reconcile-before-repeat under every fault switch of the CRM sandbox.

The sandbox's own state is the witness: after a write whose answer was lost (`write_then_500`: applied,
then 500), the CRM must hold exactly one object, never a duplicate.
"""

from __future__ import annotations

import pytest

from cherry_sync.hooks import errors
from cherry_sync.hooks.base import RetrySettings
from tests.hooks.conftest import FAST, ROOMY, crm_hook

WRITE_FAULTS = ["write_then_500", "500"]  # applied and answered 500 / refused with 500 before applying
# Counted attempts must not include a repeat caused by a slow answer on a loaded machine: a roomy read timeout, and
# where a hang is the fault, a hang well past a read timeout that still leaves an ordinary answer 2 s.
HANG_SECONDS = 3.0
HANG_RETRY = RetrySettings(**{**FAST.__dict__, "read_timeout": 2.0})


def _retry_for(fault: str) -> RetrySettings:
    return HANG_RETRY if fault == "hang" else ROOMY


def _counts(crm) -> dict:
    return crm.location_state(crm.location(0).id)["counts"]


# -- transient faults: retried until the call succeeds -------------------------------------------


@pytest.mark.parametrize("fault", ["429_no_retry_after", "500", "502", "503", "hang"])
def test_reads_are_retried_through_faults(crm_sandbox, fault):
    crm_sandbox.set_faults(script=[fault, fault], hang_seconds=HANG_SECONDS)
    hook = crm_hook(crm_sandbox, retry=_retry_for(fault))
    assert hook.list_pipelines()
    assert hook.calls["GET /opportunities/pipelines"] == 3


def test_429_retry_after_is_honoured(crm_sandbox, sleeps):
    crm_sandbox.set_faults(script=["429"], retry_after_seconds=4)
    hook = crm_hook(crm_sandbox, sleep=sleeps, retry=ROOMY)
    assert hook.list_pipelines()
    assert hook.calls["GET /opportunities/pipelines"] == 2
    assert len(sleeps.waits) == 1 and 4 <= sleeps.waits[0] <= 4.25


def test_latency_needs_no_retry(crm_sandbox):
    crm_sandbox.set_faults(latency_ms=120)
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    hook.upsert_contact({"email": "slow@example.org"})
    assert hook.list_pipelines()
    assert hook.api_calls == 2


@pytest.mark.parametrize("fault", ["429", "429_no_retry_after", "500", "503", "write_then_500", "hang"])
def test_upsert_through_faults_leaves_one_contact(crm_sandbox, fault):
    crm_sandbox.set_faults(script=[fault], retry_after_seconds=0, hang_seconds=HANG_SECONDS)
    hook = crm_hook(crm_sandbox, retry=_retry_for(fault))
    contact, created = hook.upsert_contact({"firstName": "Fay", "email": "fay@example.org"})
    assert created is True
    assert hook.calls["POST /contacts/upsert"] == 2
    assert _counts(crm_sandbox)["contacts"] == 1
    assert hook.get_contact(contact["id"])["firstName"] == "Fay"


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_upsert_of_an_existing_contact_lands_after_a_lost_answer(crm_sandbox, fault):
    """A 5xx on an update-by-upsert: the new values must be in the CRM, whether or not the first try landed."""
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    contact, _ = hook.upsert_contact({"firstName": "Old", "email": "existing@example.org"})
    crm_sandbox.set_faults(script=[fault])
    again, _ = hook.upsert_contact({"firstName": "New", "email": "existing@example.org"})
    assert again["id"] == contact["id"]
    assert hook.get_contact(contact["id"])["firstName"] == "New"
    assert _counts(crm_sandbox)["contacts"] == 1


# -- creates that are not idempotent: reconciled before any repeat ---------------------------------


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_create_opportunity_is_reconciled(crm_sandbox, fault):
    loc = crm_sandbox.location(0).id
    crm_sandbox.set_location_settings(loc, allowDuplicateOpportunity=True)  # a blind repeat would duplicate
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    pipeline = hook.list_pipelines()[0]
    contact, _ = hook.upsert_contact({"email": "opp.fault@example.org"})
    crm_sandbox.set_faults(script=[fault])
    opp = hook.create_opportunity(
        {"pipelineId": pipeline["id"], "contactId": contact["id"], "name": "Cherry plan", "status": "open"}
    )
    state = crm_sandbox.location_state(loc)
    assert [o["id"] for o in state["opportunities"]] == [opp["id"]]
    assert hook.calls["POST /opportunities"] == (1 if fault == "write_then_500" else 2)


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_create_folder_is_reconciled(crm_sandbox, fault):
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    parent = hook.create_folder("Cherry")
    crm_sandbox.set_faults(script=[fault])
    folder = hook.create_folder("Promotions", parent_id=parent["id"])
    media = crm_sandbox.location_state(crm_sandbox.location(0).id)["media"]
    assert sorted(m["name"] for m in media) == ["Cherry", "Promotions"]
    assert folder["id"] == next(m["id"] for m in media if m["name"] == "Promotions")


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_upload_file_is_reconciled(crm_sandbox, fault):
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    parent = hook.create_folder("Cherry")
    crm_sandbox.set_faults(script=[fault])
    uploaded = hook.upload_file(
        name="summer.png", content=b"png bytes", content_type="image/png", parent_id=parent["id"]
    )
    files = [m for m in crm_sandbox.location_state(crm_sandbox.location(0).id)["media"] if m["type"] == "file"]
    assert [f["id"] for f in files] == [uploaded["fileId"]]
    assert crm_sandbox.media_bytes(uploaded["fileId"]) == b"png bytes"


@pytest.mark.parametrize("fault", WRITE_FAULTS)
@pytest.mark.parametrize("field_key", ["contact.cherry_fault_test", "cherry_fault_test"])
def test_create_custom_field_is_reconciled(crm_sandbox, fault, field_key):
    """The CRM stores the key with its model prefix whether or not it was sent with one."""
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    crm_sandbox.set_faults(script=[fault])
    field = hook.create_custom_field(
        {"name": "Cherry Fault Test", "dataType": "TEXT", "model": "contact", "fieldKey": field_key}
    )
    stored = crm_sandbox.location_state(crm_sandbox.location(0).id)["customFields"]
    assert [f["id"] for f in stored] == [field["id"]]
    assert stored[0]["fieldKey"] == "contact.cherry_fault_test"


def test_send_email_is_never_repeated_blind(crm_sandbox):
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    contact, _ = hook.upsert_contact({"email": "once@example.org"})
    crm_sandbox.set_faults(script=["write_then_500"])
    with pytest.raises(errors.AmbiguousWriteError):
        hook.send_email({"contactId": contact["id"], "subject": "Once", "html": "<p>once</p>"})
    assert len(crm_sandbox.messages(crm_sandbox.location(0).id)) == 1
    assert hook.calls["POST /conversations/messages"] == 1


def test_send_email_refused_by_5xx_is_not_repeated_either(crm_sandbox):
    """The hook cannot tell a 500-before from a 500-after: it does not guess."""
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    contact, _ = hook.upsert_contact({"email": "maybe@example.org"})
    crm_sandbox.set_faults(script=["500"])
    with pytest.raises(errors.AmbiguousWriteError):
        hook.send_email({"contactId": contact["id"], "subject": "Maybe", "html": "<p>?</p>"})
    assert crm_sandbox.messages(crm_sandbox.location(0).id) == []


def test_send_email_429_is_retried(crm_sandbox):
    """A 429 means the write was refused, not applied: safe to repeat even when not idempotent."""
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    contact, _ = hook.upsert_contact({"email": "later@example.org"})
    crm_sandbox.set_faults(script=["429_no_retry_after"])
    hook.send_email({"contactId": contact["id"], "subject": "Later", "html": "<p>later</p>"})
    assert len(crm_sandbox.messages(crm_sandbox.location(0).id)) == 1


def test_writes_give_up_after_max_attempts(crm_sandbox):
    crm_sandbox.set_faults(server_error_share=1.0, methods=["POST"])
    hook = crm_hook(crm_sandbox, retry=ROOMY)
    with pytest.raises(errors.ServerError):
        hook.upsert_contact({"email": "never@example.org"})
    assert hook.calls["POST /contacts/upsert"] == FAST.max_attempts


def test_a_write_that_lands_late_is_found_before_any_later_repeat(crm_sandbox):
    """A create whose answer was lost can land after the first look found nothing (the CRM keeps working after the
    client gave up). Here it lands while the hook waits out a 429 on its repeat: the next repeat must look again
    rather than create blind (which the CRM refuses: the key is taken)."""
    crm_sandbox.set_faults(script=["hang", "429"], methods=["POST"], hang_seconds=HANG_SECONDS, retry_after_seconds=0)
    body = {"name": "Cherry Late Test", "dataType": "TEXT", "model": "contact", "fieldKey": "contact.cherry_late_test"}
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # waiting after the 429: the hung create lands now (the sandbox dropped it; land it)
            landed = crm_sandbox.client(0).post(f"/locations/{crm_sandbox.location(0).id}/customFields", json=body)
            assert landed.status_code == 201, landed.text

    hook = crm_hook(crm_sandbox, sleep=sleep, retry=HANG_RETRY)
    field = hook.create_custom_field(body)
    stored = crm_sandbox.location_state(crm_sandbox.location(0).id)["customFields"]
    assert [f["id"] for f in stored] == [field["id"]]
    assert hook.calls["POST /locations/{id}/customFields"] == 2


def test_429_retry_after_as_an_http_date_is_honoured(crm_sandbox, sleeps):
    crm_sandbox.set_faults(script=["429"], retry_after_seconds=4, retry_after_format="http-date")
    hook = crm_hook(crm_sandbox, sleep=sleeps, retry=ROOMY)
    assert hook.list_pipelines()
    assert hook.calls["GET /opportunities/pipelines"] == 2
    assert len(sleeps.waits) == 1 and 3 <= sleeps.waits[0] <= 4.25


def test_a_repeat_refused_as_a_duplicate_is_reconciled(crm_sandbox):
    """A create whose answer was lost lands while its repeat is on the way: the look before the repeat found nothing,
    the repeat is refused ("already exists"), and the hook looks again instead of failing.

    Timeline with 1.2 s of latency on every request, a 2.6 s hang on the first create and a 2.0 s read timeout:
    create sent at 0, gives up at 2.0; the look (sent at 2.0) is answered at 3.2, before the create lands at 3.8; the
    repeat (sent at 3.2) reaches the CRM at 4.4, after it landed. Margins are 0.6 s either side."""
    crm_sandbox.set_faults(script=["hang"], methods=["POST"], hang_seconds=2.6, latency_ms=1200)
    body = {"name": "Cherry Race Test", "dataType": "TEXT", "model": "contact", "fieldKey": "contact.cherry_race_test"}
    hook = crm_hook(crm_sandbox, retry=HANG_RETRY)
    try:
        field = hook.create_custom_field(body)
    finally:
        crm_sandbox.clear_faults()
    stored = crm_sandbox.location_state(crm_sandbox.location(0).id)["customFields"]
    assert [f["id"] for f in stored if f["fieldKey"].endswith("cherry_race_test")] == [field["id"]]
    # The path under test: two creates reached the CRM, the second was refused as a duplicate.
    assert hook.calls["POST /locations/{id}/customFields"] == 2
