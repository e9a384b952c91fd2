"""Pure helpers for finding a patient's CRM contact and for spotting two patients claiming one contact.

The lookup order (email, then phone, then name + date of birth) is run by the caller against the CRM;
these functions only produce the normalised keys and check the outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from cherry_sync.domain.contact_points import email_match_key, name_match_key
from cherry_sync.domain.desired_contact import DesiredContact


@dataclass(frozen=True)
class MatchKeys:
    """Normalised lookup keys for one patient. Any may be None when Cherry lacks the data."""

    email: str | None = field(repr=False)  # case-folded
    phone: str | None = field(repr=False)  # E.164
    name_dob: tuple[str, str, date] | None = field(repr=False)  # (first, last, dob), loosely normalised


def match_keys(desired: DesiredContact) -> MatchKeys:
    """Keys for the matching steps. The name+DOB key needs both names and a date of birth."""
    first = name_match_key(desired.first_name)
    last = name_match_key(desired.last_name)
    name_dob = (first, last, desired.date_of_birth) if first and last and desired.date_of_birth else None
    return MatchKeys(email=email_match_key(desired.email), phone=desired.phone, name_dob=name_dob)


def detect_conflicts(assignments: Mapping[str, str]) -> dict[str, list[str]]:
    """Contacts claimed by more than one patient: {contact_id: sorted patient ids}.

    `assignments` maps Cherry patient id -> CRM contact id. Such patients are flagged for review and not
    written: merging two people into one contact would mix their financing data.
    """
    by_contact: dict[str, list[str]] = defaultdict(list)
    for patient_id, contact_id in assignments.items():
        by_contact[contact_id].append(patient_id)
    return {contact: sorted(patients) for contact, patients in sorted(by_contact.items()) if len(patients) > 1}
