"""Fetch the estimates written into contacts: the practice's, once per run; a patient's, on opt-in."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from cherry_sync.domain import Estimates, PracticeEstimates, parse_estimates
from cherry_sync.hooks import errors
from cherry_sync.hooks.cherry import CherryHook


def practice_estimates(cherry: CherryHook, amounts: Iterable[Decimal]) -> PracticeEstimates:
    """The practice's plans for each reference amount (one Cherry call per amount, per run)."""
    return PracticeEstimates(tuple(parse_estimates(cherry.get_estimates(amount)) for amount in amounts))


class PatientEstimates:
    """Patient-specific estimates, fetched lazily per patient; a patient without an approval gets none.

    Cherry answering "none" (404, or no plans) returns None: the patient has no estimate, and the CRM's
    estimate fields are cleared. A malformed answer raises `RecordRejected`: Cherry's value is unknown then,
    and the caller leaves the fields as they are rather than clear them on bad input.
    """

    def __init__(self, cherry: CherryHook) -> None:
        self.cherry = cherry

    def __call__(self, patient_id: str) -> Estimates | None:
        try:
            raw = self.cherry.get_patient_estimates(patient_id)
        except errors.NotFoundError:
            return None
        estimates = parse_estimates(raw, source_id=patient_id)
        return estimates if estimates.plans else None
