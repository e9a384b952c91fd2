"""The Cherry Sync domain: plain Python rules with no Airflow, HTTP or database.

Parsing and validating Cherry records, the custom-field catalogue, contact-point normalisation, the
Cherry → CRM mapping, the non-destructive merge, change hashing and estimate text. Hooks fetch raw JSON,
these functions decide what it means and what to write, the store remembers it, and hooks write it.
"""

from cherry_sync.domain.cherry_records import (
    AccountStatus,
    BalanceStatus,
    CherryEvent,
    CherryPatient,
    CherryPayment,
    EstimatePlan,
    Estimates,
    EventType,
    ObjectType,
    PaymentStatus,
    parse_estimates,
    parse_event,
    parse_event_subject,
    parse_patient,
    parse_payment,
)
from cherry_sync.domain.contact_points import clean_name, normalise_email, normalise_phone
from cherry_sync.domain.custom_fields import (
    CATALOGUE,
    FieldConflict,
    FieldPlan,
    FieldsNotProvisioned,
    FieldSpec,
    OptionsUpdate,
    field_ids,
    plan_field_provisioning,
)
from cherry_sync.domain.desired_contact import DesiredContact
from cherry_sync.domain.errors import (
    DomainError,
    Entity,
    FieldWarning,
    InvalidPracticeTimezone,
    ReasonCode,
    RecordRejected,
    UnprovisionedField,
)
from cherry_sync.domain.estimates import PracticeEstimates, estimate_text
from cherry_sync.domain.hashing import content_hash
from cherry_sync.domain.mapping import desired_contact, latest_payment
from cherry_sync.domain.matching import MatchKeys, detect_conflicts, match_keys
from cherry_sync.domain.merge import ContactWrite, CustomFieldWrite, plan_contact_write

__all__ = [
    "CATALOGUE",
    "AccountStatus",
    "BalanceStatus",
    "CherryEvent",
    "CherryPatient",
    "CherryPayment",
    "ContactWrite",
    "CustomFieldWrite",
    "DesiredContact",
    "DomainError",
    "Entity",
    "EstimatePlan",
    "Estimates",
    "EventType",
    "FieldConflict",
    "FieldPlan",
    "FieldSpec",
    "FieldWarning",
    "FieldsNotProvisioned",
    "InvalidPracticeTimezone",
    "MatchKeys",
    "ObjectType",
    "OptionsUpdate",
    "PaymentStatus",
    "PracticeEstimates",
    "ReasonCode",
    "RecordRejected",
    "UnprovisionedField",
    "clean_name",
    "content_hash",
    "desired_contact",
    "detect_conflicts",
    "estimate_text",
    "field_ids",
    "latest_payment",
    "match_keys",
    "normalise_email",
    "normalise_phone",
    "parse_estimates",
    "parse_event",
    "parse_event_subject",
    "parse_patient",
    "parse_payment",
    "plan_contact_write",
    "plan_field_provisioning",
]
