"""Request bodies, whitelisted like the real API: any property not listed here is a 422.

Models are strict (a numeric string is not a number, a number is not a string) so client bugs show up.
Field names follow the official OpenAPI DTOs (UpsertContactDto, CreateDto, SendMessageBodyDto, ...).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.crm.custom_fields import DATA_TYPES

Number = int | float
DataType = Literal[DATA_TYPES]  # type: ignore[valid-type]
Status = Literal["open", "won", "lost", "abandoned", "all"]


class Body(BaseModel):
    """Base of every JSON body: unknown properties are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def given(self) -> dict[str, Any]:
        """Only the properties the client sent (an explicit null counts as sent)."""
        return self.model_dump(exclude_unset=True)


# --- contacts -----------------------------------------------------------------------------------


class CustomFieldWrite(Body):
    """`{id | key, field_value}`; `fieldValue` (v3 name) and `value` are accepted too."""

    id: str | None = None
    key: str | None = None
    field_value: Any = None
    fieldValue: Any = None
    value: Any = None

    @model_validator(mode="after")
    def _needs_ref(self) -> CustomFieldWrite:
        if not self.id and not self.key:
            raise ValueError("customFields.id or customFields.key should not be empty")
        return self

    def item(self) -> dict[str, Any]:
        """`{id, key, value}`; `value` is absent when the client sent none (a 422 when applied)."""
        sent = self.model_fields_set
        item: dict[str, Any] = {"id": self.id, "key": self.key}
        for name in ("field_value", "fieldValue", "value"):
            if name in sent:
                item["value"] = getattr(self, name)
                break
        return item


class DndSetting(Body):
    status: Literal["active", "inactive", "permanent"]
    message: str | None = None
    code: str | None = None


class DndSettings(Body):
    Call: DndSetting | None = None
    Email: DndSetting | None = None
    SMS: DndSetting | None = None
    WhatsApp: DndSetting | None = None
    GMB: DndSetting | None = None
    FB: DndSetting | None = None


class InboundDndSettings(Body):
    all: DndSetting | None = None


class _ContactCommon(Body):
    firstName: str | None = None
    lastName: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address1: str | None = None
    city: str | None = None
    state: str | None = None
    postalCode: str | None = None
    website: str | None = None
    timezone: str | None = None
    dnd: bool | None = None
    dndSettings: DndSettings | None = None
    inboundDndSettings: InboundDndSettings | None = None
    tags: list[str] | None = None
    customFields: list[CustomFieldWrite] | None = None
    source: str | None = None
    dateOfBirth: str | Number | None = None
    country: str | None = None
    assignedTo: str | None = None


class CreateContact(_ContactCommon):
    """CreateContactDto."""

    locationId: str
    gender: str | None = None
    companyName: str | None = None


class UpsertContact(CreateContact):
    """UpsertContactDto."""

    createNewIfDuplicateAllowed: bool = False


class UpdateContact(_ContactCommon):
    """UpdateContactDto: no locationId (sending one is a 422, as on the real API)."""


class Tags(Body):
    tags: list[str]


class BulkTags(Body):
    contacts: list[str] = Field(min_length=1, max_length=100)
    tags: list[str]
    locationId: str
    removeAllTags: bool | None = None


class SortSpec(Body):
    field: str
    direction: Literal["asc", "desc"] = "desc"


class SearchContacts(Body):
    """SearchBodyV2DTO as the search documentation describes it."""

    locationId: str
    pageLimit: int = Field(ge=1, le=500)
    page: int | None = Field(None, ge=1)
    searchAfter: list[Any] | None = None
    filters: list[dict[str, Any]] | None = None
    sort: list[SortSpec] | None = Field(None, max_length=3)
    query: str | None = Field(None, max_length=75)


# --- location custom fields ----------------------------------------------------------------------


class TextBoxListOption(Body):
    label: str
    prefillValue: str | None = None


class _FieldCommon(Body):
    placeholder: str | None = None
    position: Number | None = None
    model: Literal["contact", "opportunity"] | None = None
    acceptedFormat: list[str] | None = None
    isMultipleFile: bool | None = None
    maxNumberOfFiles: Number | None = None
    textBoxListOptions: list[TextBoxListOption] | None = None
    # Undocumented but accepted by the real API (#300) and used by community code.
    options: list[str] | None = None
    description: str | None = None
    parentId: str | None = None


class CreateCustomField(_FieldCommon):
    """CreateCustomFieldsDTO plus the undocumented fieldKey/options/description/parentId."""

    name: str
    dataType: DataType
    fieldKey: str | None = None


class UpdateCustomField(_FieldCommon):
    """UpdateCustomFieldsDTO: name is required; dataType and fieldKey cannot change."""

    name: str


# --- opportunities -------------------------------------------------------------------------------


class CreateOpportunity(Body):
    """CreateDto."""

    pipelineId: str
    locationId: str
    name: str
    status: Status
    contactId: str
    pipelineStageId: str | None = None
    monetaryValue: Number | None = None
    assignedTo: str | None = None
    customFields: list[CustomFieldWrite] | None = None


class UpdateOpportunity(Body):
    """UpdateOpportunityDto: every field optional, no locationId."""

    pipelineId: str | None = None
    name: str | None = None
    pipelineStageId: str | None = None
    status: Status | None = None
    monetaryValue: Number | None = None
    assignedTo: str | None = None
    customFields: list[CustomFieldWrite] | None = None


class UpdateOpportunityStatus(Body):
    status: Status
    lostReasonId: str | None = None


# --- media ---------------------------------------------------------------------------------------


class CreateFolder(BaseModel):
    """CreateFolderParams. The real folder endpoint ignores unknown properties, so this one does too."""

    model_config = ConfigDict(extra="ignore", strict=True)

    altId: str
    altType: Literal["location"]
    name: str = Field(min_length=1)
    parentId: str | None = None


# --- conversations -------------------------------------------------------------------------------


class SendMessage(Body):
    """SendMessageBodyDto. Only `type` and `contactId` are required (subType/status are output fields)."""

    type: Literal["SMS", "RCS", "Email", "WhatsApp", "IG", "FB", "Custom", "Live_Chat", "TIKTOK"]
    contactId: str
    subType: Any = None
    status: Literal["delivered", "failed", "pending", "read"] | None = None
    appointmentId: str | None = None
    attachments: list[str] | None = None
    emailFrom: str | None = None
    emailTo: str | None = None
    emailCc: list[str] | None = None
    emailBcc: list[str] | None = None
    html: str | None = None
    message: str | None = None
    subject: str | None = None
    replyMessageId: str | None = None
    templateId: str | None = None
    threadId: str | None = None
    scheduledTimestamp: Number | None = None
    conversationProviderId: str | None = None
    customSubtypeId: str | None = None
    emailReplyMode: Literal["reply", "reply_all"] | None = None
    fromNumber: str | None = None
    toNumber: str | None = None
    forward: dict[str, Any] | None = None
    usesNativeSchedulingAi: bool | None = None
    optimizationPeriod: Literal["24h", "48h", "72h"] | None = None
