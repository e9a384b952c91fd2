"""A stable fingerprint of a `DesiredContact`, so an unchanged patient costs no CRM call.

The store keeps the hash of the last contact written; a run that computes the same hash skips the
patient. The hash is over a canonical rendering: sorted keys, Decimals by value ("1.5" == "1.50"),
dates as ISO text, no floats anywhere. Bump `HASH_VERSION` when the mapping changes what is written,
so every contact is re-checked once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

from cherry_sync.domain.desired_contact import DesiredContact, FieldValue

# v2: Cherry fields Cherry has no value for are cleared in the CRM (before, they were left as they were). The
# bump makes the next run re-check every contact once, so values written before v2 that Cherry has since
# cleared are emptied without a manual step.
HASH_VERSION = "cherry-contact-v2"


def canonical_decimal(value: Decimal) -> str:
    """Plain text of a Decimal's value: Decimal("1.50") and Decimal("1.5") both give "1.5"."""
    if value.is_zero():
        return "0"  # also folds -0 and 0E-2
    return format(value.normalize(), "f")


def content_hash(desired: DesiredContact) -> str:
    """sha256 hex digest of the canonical form of `desired`."""
    document = {
        "version": HASH_VERSION,
        "patient_id": desired.patient_id,
        "first_name": desired.first_name,
        "last_name": desired.last_name,
        "email": desired.email,
        "phone": desired.phone,
        "date_of_birth": _canonical(desired.date_of_birth) if desired.date_of_birth else None,
        "custom_fields": {key: _canonical(value) for key, value in desired.custom_fields.items()},
        "cleared": sorted(desired.cleared),
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def _canonical(value: FieldValue) -> Any:
    if isinstance(value, Decimal):
        # Tagged, so the text "1.5" in a TEXT field never hashes like the amount 1.5.
        return {"decimal": canonical_decimal(value)}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value
