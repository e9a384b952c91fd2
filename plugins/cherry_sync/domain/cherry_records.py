"""Cherry records (patients, payments, events, estimates): the contract's models and their parse functions.

Each model's fields are the contract's types (`cherry_sync.domain.contract`), so validating a raw JSON object
against the model applies every rule of docs/field-mapping.md. A parse function either returns the validated,
immutable model or raises `RecordRejected` with a reason code. Problems that would make us write a wrong financial
or status field reject the record; problems confined to one contact detail drop that detail and leave a
`FieldWarning` on the model (see docs/field-mapping.md, "Reject or degrade"). Unknown extra keys are ignored, so
Cherry can add fields without breaking the sync.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from cherry_sync.domain.birth_dates import is_plausible_birth_date
from cherry_sync.domain.contract import (
    MAX_MONEY,
    CalendarDate,
    Email,
    Flag,
    JsonObject,
    Money,
    OptionalReference,
    OptionalTimestamp,
    OwnId,
    Percent,
    Phone,
    RecordContext,
    Reference,
    RequiredMoney,
    Timestamp,
    bounded_text,
    contract_enum,
    contract_error,
    decimal_type,
    drop_field,
    droppable,
    list_of_objects,
    whole_number,
)
from cherry_sync.domain.errors import Entity, FieldWarning, RecordRejected
from cherry_sync.domain.validation import ContractModel, validate_record
from cherry_sync.reasons import ReasonCode

# HighLevel does not publish a limit for first/last name; 100 characters is well above any real name
# and below where CRM list views and merge tags break. Longer text is junk (or an attack), not a name.
MAX_NAME_LENGTH = 100
# Invoice numbers and contract ids are written into a TEXT custom field.
MAX_REFERENCE_LENGTH = 255
MAX_TERM_MONTHS = 120
ZERO_MONEY = Decimal("0.00")


class AccountStatus(StrEnum):
    """Cherry account status of a patient."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    EXPIRED = "EXPIRED"
    DECLINED = "DECLINED"
    PENDING_REVIEW = "PENDING_REVIEW"


class BalanceStatus(StrEnum):
    """How much of the patient's approval has been used."""

    AVAILABLE = "AVAILABLE"
    PARTIALLY_USED = "PARTIALLY_USED"
    FULLY_USED = "FULLY_USED"
    EXPIRED = "EXPIRED"


class PaymentStatus(StrEnum):
    """Outcome of a Cherry payment (a financed checkout)."""

    COMPLETED = "COMPLETED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    CANCELLED = "CANCELLED"


class EventType(StrEnum):
    """Cherry event types. `test.ping` parses but carries no object; consumers ignore it."""

    PATIENT_CREATED = "patient.created"
    PATIENT_REFRESHED = "patient.refreshed"
    PAYMENT_COMPLETED = "payment.completed"
    PAYMENT_REFUNDED = "payment.refunded"
    PAYMENT_CANCELLED = "payment.cancelled"
    TEST_PING = "test.ping"


class ObjectType(StrEnum):
    """The kind of object an event's `data` holds."""

    PATIENT = "patient"
    PAYMENT = "payment"


# -- the record fields' types ---------------------------------------------------------------------------------

Name = bounded_text(MAX_NAME_LENGTH)
ReferenceText = bounded_text(MAX_REFERENCE_LENGTH)
AccountStatusValue = contract_enum(AccountStatus, required=True)
BalanceStatusValue = contract_enum(BalanceStatus, required=False)
PaymentStatusValue = contract_enum(PaymentStatus, required=True)
EventTypeValue = contract_enum(EventType, required=True, reason=ReasonCode.UNKNOWN_EVENT_TYPE)
# An unknown object type is a wrong shape rather than a new status: invalid_record.
ObjectTypeValue = contract_enum(ObjectType, required=False, reason=ReasonCode.INVALID_RECORD)
PaymentTerm = whole_number(0, MAX_TERM_MONTHS)
PlanTerm = whole_number(1, MAX_TERM_MONTHS)
# Estimate plan amounts may carry more than two places; they are rounded only when displayed.
PlanMoney = decimal_type(ReasonCode.INVALID_MONEY, places=6, maximum=MAX_MONEY, required=True, what="amount")
# Contact details and the birth date: unusable ones are dropped with a warning, the record is kept.
BirthDate = droppable(CalendarDate)
OptionalPhone = droppable(Phone)
OptionalEmail = droppable(Email)


class CherryPatient(ContractModel):
    """A validated Cherry patient. Contact details are already normalised (E.164 phone, checked email).

    Patient-data fields are left out of `repr()` so a stray log line cannot leak them.
    `warnings` lists details that were dropped because they were unusable. Fields are declared in the order
    they are checked: the first rule broken names the rejection, and the birth date is judged against
    `created_at`, so it comes after it.
    """

    id: OwnId
    location_id: Reference
    first_name: Name = Field(repr=False)
    last_name: Name = Field(repr=False)
    account_status: AccountStatusValue
    balance_status: BalanceStatusValue
    approval_amount: Money = Field(repr=False)
    balance_available: Money = Field(repr=False)
    application_completed_at: OptionalTimestamp
    approval_expires_at: OptionalTimestamp
    increase_eligible: Flag
    extension_eligible: Flag
    created_at: Timestamp
    updated_at: Timestamp
    # A wrong birth date is worse than none (it is never overwritten in the CRM), so an unusable one is dropped.
    date_of_birth: BirthDate = Field(repr=False)
    phone: OptionalPhone = Field(repr=False)
    email: OptionalEmail = Field(repr=False)

    _warnings: tuple[FieldWarning, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[FieldWarning, ...]:
        """Details dropped because they were unusable (reason code + field name), in field order."""
        return self._warnings

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        created_at = info.data.get("created_at")
        if value is None or created_at is None:
            return value
        # Nobody is born after their Cherry account was created; placeholders and pre-1900 dates are not real.
        if is_plausible_birth_date(value, not_after=created_at.date()):
            return value
        drop_field(info, ReasonCode.IMPLAUSIBLE_DATE)
        return None

    @model_validator(mode="after")
    def _reachable(self) -> CherryPatient:
        if self.phone is None and self.email is None:
            # The CRM matches and creates contacts by phone or email; with neither the patient cannot be synced.
            raise contract_error(ReasonCode.NO_CONTACT_POINT, "neither a usable phone nor a usable email")
        return self

    @model_validator(mode="after")
    def _report_dropped_fields(self, info: ValidationInfo) -> CherryPatient:
        if isinstance(info.context, RecordContext) and info.context.dropped:
            self._warnings = tuple(
                FieldWarning(Entity.PATIENT, self.id, reason, name) for reason, name in info.context.dropped
            )
        return self


class CherryPayment(ContractModel):
    """A validated Cherry payment. `apr` is in percent ("17.99" → Decimal("17.99"))."""

    id: OwnId
    patient_id: Reference
    location_id: Reference
    invoice_number: ReferenceText
    contract_id: ReferenceText
    amount: RequiredMoney = Field(repr=False)
    refund_amount: Money = Field(repr=False)
    status: PaymentStatusValue
    term_months: PaymentTerm
    apr: Percent
    created_at: Timestamp
    updated_at: Timestamp

    @field_validator("refund_amount")
    @classmethod
    def _refund_within_amount(cls, value: Decimal | None, info: ValidationInfo) -> Decimal:
        # Older records omit refund_amount when nothing was refunded.
        refund = value or ZERO_MONEY
        amount = info.data.get("amount")
        if amount is not None and refund > amount:
            raise contract_error(ReasonCode.INCONSISTENT_RECORD, "refund exceeds the payment amount")
        return refund

    @property
    def net_amount(self) -> Decimal:
        """Amount still financed after refunds (never negative: parsing rejects refund > amount)."""
        return self.amount - self.refund_amount


_EVENT_OBJECT_TYPES: dict[EventType, ObjectType | None] = {
    EventType.PATIENT_CREATED: ObjectType.PATIENT,
    EventType.PATIENT_REFRESHED: ObjectType.PATIENT,
    EventType.PAYMENT_COMPLETED: ObjectType.PAYMENT,
    EventType.PAYMENT_REFUNDED: ObjectType.PAYMENT,
    EventType.PAYMENT_CANCELLED: ObjectType.PAYMENT,
    EventType.TEST_PING: None,
}


class CherryEvent(ContractModel):
    """A validated event envelope. `data` stays raw; `parse_event_subject` turns it into a model."""

    id: OwnId
    type: EventTypeValue
    occurred_at: Timestamp
    patient_id: OptionalReference
    object_type: ObjectTypeValue
    data: JsonObject = Field(repr=False)

    @property
    def is_ping(self) -> bool:
        return self.type is EventType.TEST_PING

    @model_validator(mode="after")
    def _carries_what_its_type_says(self) -> CherryEvent:
        expected = _EVENT_OBJECT_TYPES[self.type]
        if expected is None:
            return self
        if self.object_type is None:
            raise contract_error(
                ReasonCode.MISSING_FIELD, "object events must say what they carry", field="object_type"
            )
        if self.object_type is not expected:
            raise contract_error(
                ReasonCode.INCONSISTENT_RECORD, "object type does not fit the event type", field="object_type"
            )
        if not self.data:
            raise contract_error(ReasonCode.MISSING_FIELD, "object events must carry the object", field="data")
        return self


class EstimatePlan(ContractModel):
    """One financing option for an amount: term, APR (percent), monthly payment and total cost."""

    term_months: PlanTerm
    apr: Percent
    monthly_payment: PlanMoney
    total: PlanMoney


EstimatePlans = list_of_objects(EstimatePlan)


class Estimates(ContractModel):
    """Cherry's estimate response for one amount: the plans a patient could choose from."""

    amount: RequiredMoney
    plans: EstimatePlans


# -- parse functions ----------------------------------------------------------------------------


def parse_patient(raw: object, *, phone_region: str = "US") -> CherryPatient:
    """Validate a raw Cherry patient object.

    Raises `RecordRejected` (missing_id, invalid_id, missing_field, invalid_record, oversize_text,
    unknown_status, invalid_money, invalid_timestamp, no_contact_point). A bad phone, email or date of
    birth is dropped with a `FieldWarning` instead, unless that leaves no way to reach the patient.
    """
    return validate_record(CherryPatient, raw, Entity.PATIENT, context=RecordContext(phone_region=phone_region))


def parse_payment(raw: object) -> CherryPayment:
    """Validate a raw Cherry payment object. Every problem rejects it: all its fields are financial."""
    return validate_record(CherryPayment, raw, Entity.PAYMENT)


def parse_event(raw: object) -> CherryEvent:
    """Validate an event envelope (id, type, time, object type, data present).

    `test.ping` parses with whatever (or no) data it carries. The embedded object is validated
    separately by `parse_event_subject`, so a bad payload is reported against the patient or payment.
    """
    return validate_record(CherryEvent, raw, Entity.EVENT)


def parse_event_subject(event: CherryEvent, *, phone_region: str = "US") -> CherryPatient | CherryPayment | None:
    """Parse the object an event carries; None for `test.ping`.

    Raises `RecordRejected` for the patient/payment (with its own reason), or `inconsistent_record`
    against the event when the object belongs to a different patient than the envelope says.
    """
    if event.object_type is None or event.is_ping:
        return None
    subject: CherryPatient | CherryPayment
    if event.object_type is ObjectType.PATIENT:
        subject = parse_patient(event.data, phone_region=phone_region)
        owner = subject.id
    else:
        subject = parse_payment(event.data)
        owner = subject.patient_id
    if event.patient_id is not None and event.patient_id != owner:
        raise RecordRejected(
            Entity.EVENT,
            event.id,
            ReasonCode.INCONSISTENT_RECORD,
            "patient_id",
            "event patient differs from the object's patient",
        )
    return subject


def parse_estimates(raw: object, *, source_id: str | None = None) -> Estimates:
    """Validate Cherry's estimates response. `source_id` (e.g. a location or patient id) labels errors.

    Plan amounts may carry more than two decimal places; they are rounded only when displayed.
    """
    return validate_record(Estimates, raw, Entity.ESTIMATES, source_id=source_id)
