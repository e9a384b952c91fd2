"""POST /conversations/messages (Version 2021-04-15). Emails are recorded, never sent; tests read them
back through GET /_sandbox/messages."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox.crm import normalize
from sandbox.crm.auth import ConversationsCaller
from sandbox.crm.errors import bad_request, unprocessable
from sandbox.crm.schemas import SendMessage
from sandbox.crm.state import now_ms

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.post("/messages")
def send_message(body: SendMessage, caller: ConversationsCaller) -> dict:
    loc = caller.location
    state = caller.state
    if body.type != "Email":
        raise bad_request(f"The sandbox only sends Email messages, not {body.type}")
    if not body.html and not body.message:
        raise unprocessable("html or message should not be empty for Email messages")
    for address in [body.emailFrom, *(body.emailCc or []), *(body.emailBcc or [])]:
        if address:
            normalize.email_or_422(address, "email address")
    with state.lock:
        contact = state.contact_of(loc, body.contactId)
        to = body.emailTo or contact.email
        if not to:
            raise bad_request("Contact does not have an email address")
        if body.emailTo and (
            not contact.email or normalize.email_key(body.emailTo) != normalize.email_key(contact.email)
        ):
            raise bad_request("emailTo must be an email address of the contact")
        conversation_id = loc.conversations.get(contact.id)
        if conversation_id is None:
            conversation_id = loc.conversations[contact.id] = state.ids.record_id()
        scheduled = body.scheduledTimestamp is not None
        record = {
            **body.given(),
            "messageId": state.ids.record_id(),
            "emailMessageId": state.ids.record_id(),
            "conversationId": conversation_id,
            "locationId": loc.id,
            "contactId": contact.id,
            "emailTo": to,
            "status": "pending" if scheduled else "delivered",
            "dateAdded": normalize.iso_ms(now_ms()),
        }
        loc.messages.append(record)
        return {
            "conversationId": conversation_id,
            "messageId": record["messageId"],
            "emailMessageId": record["emailMessageId"],
            "msg": "Email scheduled successfully." if scheduled else "Email queued successfully.",
            "status": record["status"],
        }
