"""Sending email through POST /conversations/messages (Version 2021-04-15)."""

from __future__ import annotations

import pytest


@pytest.fixture
def loc(crm_sandbox):
    return crm_sandbox.location(0).id


@pytest.fixture
def api(crm_sandbox):
    return crm_sandbox.client(0, version="2021-04-15")


@pytest.fixture
def contact_id(crm_sandbox, loc):
    r = crm_sandbox.client(0).post("/contacts/upsert", json={"locationId": loc, "email": "pat@example.com"})
    return r.json()["contact"]["id"]


def test_send_email_is_recorded(crm_sandbox, api, loc, contact_id):
    body = {
        "type": "Email",
        "contactId": contact_id,
        "subject": "Your Cherry plan",
        "html": "<p>Approved</p>",
        "emailCc": ["frontdesk@example.com"],
        "attachments": ["https://files.example.com/plan.pdf"],
    }
    r = api.post("/conversations/messages", json=body)
    assert r.status_code == 200, r.text
    sent = r.json()
    assert set(sent) == {"conversationId", "messageId", "emailMessageId", "msg", "status"}

    again = api.post("/conversations/messages", json={**body, "subject": "Reminder"}).json()
    assert again["conversationId"] == sent["conversationId"]  # one conversation per contact
    assert again["messageId"] != sent["messageId"]

    messages = crm_sandbox.messages(loc)
    assert [m["subject"] for m in messages] == ["Your Cherry plan", "Reminder"]
    assert messages[0]["emailTo"] == "pat@example.com"
    assert messages[0]["attachments"] == ["https://files.example.com/plan.pdf"]
    assert crm_sandbox.messages(crm_sandbox.location(1).id) == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"fromName": "Clinic"}, 422),  # not in SendMessageBodyDto
        ({"type": "Mail"}, 422),
        ({"html": None, "message": None}, 422),
        ({"contactId": "nosuchcontact0000000"}, 404),
        ({"emailTo": "someone-else@example.com"}, 400),
        ({"emailCc": ["not an email"]}, 422),
    ],
)
def test_send_email_validation(api, contact_id, change, status):
    body = {"type": "Email", "contactId": contact_id, "subject": "S", "html": "<p>x</p>", **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = api.post("/conversations/messages", json=body)
    assert r.status_code == status, r.text


def test_contact_without_email(crm_sandbox, api, loc):
    cid = crm_sandbox.client(0).post("/contacts/upsert", json={"locationId": loc, "phone": "+15550100000"})
    r = api.post(
        "/conversations/messages", json={"type": "Email", "contactId": cid.json()["contact"]["id"], "html": "x"}
    )
    assert r.status_code == 400


def test_another_locations_contact_is_403(crm_sandbox, contact_id):
    other = crm_sandbox.client(1, version="2021-04-15")
    r = other.post("/conversations/messages", json={"type": "Email", "contactId": contact_id, "html": "x"})
    assert r.status_code == 403
