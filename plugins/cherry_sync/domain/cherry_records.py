"""Cherry records (patients, payments, events, estimates): typed models and the parse functions.

A parse function either returns a validated, immutable model or raises `RecordRejected` with a reason
code. Problems that would make us write a wrong financial or status field reject the record; problems
confined to one contact detail drop that detail and leave a `FieldWarning` on the model
(see docs/field-mapping.md, "Reject or degrade"). Unknown extra keys are ignored, so Cherry can add
fields without breaking the sync.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cherry_sync.domain._reader import RecordReader
from cherry_sync.domain.birth_dates import is_plausible_birth_date
from cherry_sync.domain.contact_points import normalise_email, normalise_phone
from cherry_sync.domain.errors import Entity, FieldWarning, ReasonCode, RecordRejected

# HighLevel does not publish a limit for first/last name; 100 characters is well above any real name
# and below where CRM list views and merge tags break. Longer text is junk (or an attack), not a name.
MAX_NAME_LENGTH = 100
# Invoice numbers and contract ids are written into a TEXT custom field.
MAX_REFERENCE_LENGTH = 255
MAX_TERM_MONTHS = 120


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


_MODEL_CONFIG = ConfigDict(frozen=True, strict=True, extra="forbid")


class CherryPatient(BaseModel):
    """A validated Cherry patient. Contact details are already normalised (E.164 phone, checked email).

    Patient-data fields are left out of `repr()` so a stray log line cannot leak them.
    `warnings` lists details that were dropped because they were unusable.
    """

    model_config = _MODEL_CONFIG

    id: str
    location_id: str
    first_name: str | None = Field(repr=False)
    last_name: str | None = Field(repr=False)
    date_of_birth: date | None = Field(repr=False)
    phone: str | None = Field(repr=False)
    email: str | None = Field(repr=False)
    account_status: AccountStatus
    approval_amount: Decimal | None = Field(repr=False)
    balance_available: Decimal | None = Field(repr=False)
    balance_status: BalanceStatus | None
    application_completed_at: AwareDatetime | None
    approval_expires_at: AwareDatetime | None
    increase_eligible: bool
    extension_eligible: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime
    warnings: tuple[FieldWarning, ...] = ()


class CherryPayment(BaseModel):
    """A validated Cherry payment. `apr` is in percent ("17.99" → Decimal("17.99"))."""

    model_config = _MODEL_CONFIG

    id: str
    patient_id: str
    location_id: str
    invoice_number: str | None
    contract_id: str | None
    amount: Decimal = Field(repr=False)
    refund_amount: Decimal = Field(repr=False)
    status: PaymentStatus
    term_months: int
    apr: Decimal
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @property
    def net_amount(self) -> Decimal:
        """Amount still financed after refunds (never negative: parsing rejects refund > amount)."""
        return self.amount - self.refund_amount


class CherryEvent(BaseModel):
    """A validated event envelope. `data` stays raw; `parse_event_subject` turns it into a model."""

    model_config = _MODEL_CONFIG

    id: str
    type: EventType
    occurred_at: AwareDatetime
    patient_id: str | None
    object_type: ObjectType | None
    data: dict[str, Any] = Field(repr=False)

    @property
    def is_ping(self) -> bool:
        return self.type is EventType.TEST_PING


class EstimatePlan(BaseModel):
    """One financing option for an amount: term, APR (percent), monthly payment and total cost."""

    model_config = _MODEL_CONFIG

    term_months: int
    apr: Decimal
    monthly_payment: Decimal
    total: Decimal


class Estimates(BaseModel):
    """Cherry's estimate response for one amount: the plans a patient could choose from."""

    model_config = _MODEL_CONFIG

    amount: Decimal
    plans: tuple[EstimatePlan, ...]


# -- parse functions ----------------------------------------------------------------------------


def parse_patient(raw: object, *, phone_region: str = "US") -> CherryPatient:
    """Validate a raw Cherry patient object.

    Raises `RecordRejected` (missing_id, invalid_id, missing_field, invalid_record, oversize_text,
    unknown_status, invalid_money, invalid_timestamp, no_contact_point). A bad phone, email or date of
    birth is dropped with a `FieldWarning` instead, unless that leaves no way to reach the patient.
    """
    reader = RecordReader(raw, Entity.PATIENT)
    patient_id = reader.own_id()
    location_id = reader.ref_id("location_id")
    first_name = reader.text("first_name", max_length=MAX_NAME_LENGTH)
    last_name = reader.text("last_name", max_length=MAX_NAME_LENGTH)
    account_status = reader.enum("account_status", AccountStatus, required=True)
    balance_status = reader.enum("balance_status", BalanceStatus, required=False)
    approval_amount = reader.money("approval_amount")
    balance_available = reader.money("balance_available")
    application_completed_at = reader.timestamp("application_completed_at", required=False)
    approval_expires_at = reader.timestamp("approval_expires_at", required=False)
    increase_eligible = reader.boolean("increase_eligible")
    extension_eligible = reader.boolean("extension_eligible")
    created_at = reader.timestamp("created_at", required=True)
    updated_at = reader.timestamp("updated_at", required=True)
    assert created_at is not None and updated_at is not None  # required=True guarantees it

    # A wrong birth date is worse than none (it is never overwritten in the CRM), so an unusable one is
    # dropped. Nobody is born after their Cherry account was created.
    date_of_birth, ok = reader.calendar_date("date_of_birth")
    if not ok:
        reader.warn(ReasonCode.INVALID_DATE, "date_of_birth")
    elif date_of_birth is not None and not is_plausible_birth_date(date_of_birth, not_after=created_at.date()):
        reader.warn(ReasonCode.IMPLAUSIBLE_DATE, "date_of_birth")
        date_of_birth = None

    phone = _contact_point(
        reader, "phone", lambda raw_phone: normalise_phone(raw_phone, phone_region), ReasonCode.INVALID_PHONE
    )
    email = _contact_point(reader, "email", normalise_email, ReasonCode.INVALID_EMAIL)
    if phone is None and email is None:
        # The CRM matches and creates contacts by phone or email; with neither the patient cannot be synced.
        reader.reject(ReasonCode.NO_CONTACT_POINT, None, "neither a usable phone nor a usable email")

    return _build(
        CherryPatient,
        reader,
        id=patient_id,
        location_id=location_id,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=date_of_birth,
        phone=phone,
        email=email,
        account_status=account_status,
        approval_amount=approval_amount,
        balance_available=balance_available,
        balance_status=balance_status,
        application_completed_at=application_completed_at,
        approval_expires_at=approval_expires_at,
        increase_eligible=increase_eligible,
        extension_eligible=extension_eligible,
        created_at=created_at,
        updated_at=updated_at,
        warnings=tuple(reader.warnings),
    )


def parse_payment(raw: object) -> CherryPayment:
    """Validate a raw Cherry payment object. Every problem rejects it: all its fields are financial."""
    reader = RecordReader(raw, Entity.PAYMENT)
    payment_id = reader.own_id()
    patient_id = reader.ref_id("patient_id")
    location_id = reader.ref_id("location_id")
    invoice_number = reader.text("invoice_number", max_length=MAX_REFERENCE_LENGTH)
    contract_id = reader.text("contract_id", max_length=MAX_REFERENCE_LENGTH)
    amount = reader.money("amount", required=True)
    # Older records omit refund_amount when nothing was refunded.
    refund_amount = reader.money("refund_amount") or Decimal("0.00")
    assert amount is not None
    if refund_amount > amount:
        reader.reject(ReasonCode.INCONSISTENT_RECORD, "refund_amount", "refund exceeds the payment amount")
    status = reader.enum("status", PaymentStatus, required=True)
    term_months = reader.integer("term_months", minimum=0, maximum=MAX_TERM_MONTHS)
    apr = reader.percent("apr")
    created_at = reader.timestamp("created_at", required=True)
    updated_at = reader.timestamp("updated_at", required=True)
    return _build(
        CherryPayment,
        reader,
        id=payment_id,
        patient_id=patient_id,
        location_id=location_id,
        invoice_number=invoice_number,
        contract_id=contract_id,
        amount=amount,
        refund_amount=refund_amount,
        status=status,
        term_months=term_months,
        apr=apr,
        created_at=created_at,
        updated_at=updated_at,
    )


_EVENT_OBJECT_TYPES: dict[EventType, ObjectType | None] = {
    EventType.PATIENT_CREATED: ObjectType.PATIENT,
    EventType.PATIENT_REFRESHED: ObjectType.PATIENT,
    EventType.PAYMENT_COMPLETED: ObjectType.PAYMENT,
    EventType.PAYMENT_REFUNDED: ObjectType.PAYMENT,
    EventType.PAYMENT_CANCELLED: ObjectType.PAYMENT,
    EventType.TEST_PING: None,
}


def parse_event(raw: object) -> CherryEvent:
    """Validate an event envelope (id, type, time, object type, data present).

    `test.ping` parses with whatever (or no) data it carries. The embedded object is validated
    separately by `parse_event_subject`, so a bad payload is reported against the patient or payment.
    """
    reader = RecordReader(raw, Entity.EVENT)
    event_id = reader.own_id()
    event_type = reader.enum("type", EventType, required=True, reason=ReasonCode.UNKNOWN_EVENT_TYPE)
    assert event_type is not None
    occurred_at = reader.timestamp("occurred_at", required=True)
    patient_id = reader.ref_id("patient_id", required=False)
    object_type = reader.enum("object_type", ObjectType, required=False, reason=ReasonCode.INVALID_RECORD)
    data = reader.mapping("data")
    expected = _EVENT_OBJECT_TYPES[event_type]
    if expected is not None:
        if object_type is None:
            reader.reject(ReasonCode.MISSING_FIELD, "object_type", "object events must say what they carry")
        if object_type is not expected:
            reader.reject(ReasonCode.INCONSISTENT_RECORD, "object_type", "object type does not fit the event type")
        if not data:
            reader.reject(ReasonCode.MISSING_FIELD, "data", "object events must carry the object")
    return _build(
        CherryEvent,
        reader,
        id=event_id,
        type=event_type,
        occurred_at=occurred_at,
        patient_id=patient_id,
        object_type=object_type,
        data=dict(data),
    )


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
    reader = RecordReader(raw, Entity.ESTIMATES, source_id=source_id)
    amount = reader.money("amount", required=True)
    plans = []
    for index, plan_raw in enumerate(reader.list_of_objects("plans")):
        plan = RecordReader(plan_raw, Entity.ESTIMATES, source_id=source_id, field_prefix=f"plans[{index}].")
        plans.append(
            _build(
                EstimatePlan,
                plan,
                term_months=plan.integer("term_months", minimum=1, maximum=MAX_TERM_MONTHS),
                apr=plan.percent("apr"),
                monthly_payment=plan.money("monthly_payment", required=True, max_places=6),
                total=plan.money("total", required=True, max_places=6),
            )
        )
    return _build(Estimates, reader, amount=amount, plans=tuple(plans))


def _contact_point(
    reader: RecordReader, key: str, normalise: Callable[[object], str | None], warning: ReasonCode
) -> str | None:
    """Normalise an optional contact detail; a present-but-unusable value becomes a warning."""
    raw_value = reader.raw(key)
    if raw_value is None or (isinstance(raw_value, str) and not raw_value.strip()):
        return None
    value = normalise(raw_value)
    if value is None:
        reader.warn(warning, key)
    return value


def _build(model: type[Any], reader: RecordReader, **values: Any) -> Any:
    """Construct a model from already-validated values.

    The readers have checked every value, so a pydantic error here is a bug in this module. It is still
    converted to `invalid_record` without chaining: pydantic's message would quote the input values.
    """
    try:
        return model(**values)
    except ValueError:
        pass
    raise RecordRejected(reader.entity, reader.source_id, ReasonCode.INVALID_RECORD, None, "record failed validation")
