"""What counts as a real date of birth, on either side of the sync.

Forms and imports fill unknown birth dates with defaults; those must never be written to the CRM, and
a CRM holding one is treated as having no date of birth (so Cherry may fill it in).
"""

from __future__ import annotations

from datetime import date

# Defaults seen in CRMs and form builders: the spreadsheet epoch and the Unix epoch.
PLACEHOLDER_BIRTH_DATES: frozenset[date] = frozenset({date(1900, 1, 1), date(1970, 1, 1)})
# Nobody alive was born before this; earlier values are typos or defaults ("0001-01-01").
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def is_plausible_birth_date(value: date, *, not_after: date) -> bool:
    """True if `value` could be a living patient's real birth date known on `not_after`."""
    return EARLIEST_BIRTH_DATE <= value <= not_after and value not in PLACEHOLDER_BIRTH_DATES
