"""`DesiredContact`: what Cherry says one CRM contact should hold, before merging with what the CRM has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cherry_sync.domain.custom_fields import FIELDS_BY_KEY, DataType

FieldValue = str | Decimal | date

_PYTHON_TYPES: dict[DataType, type] = {
    DataType.TEXT: str,
    DataType.LARGE_TEXT: str,
    DataType.SINGLE_OPTIONS: str,
    DataType.MONETORY: Decimal,
    DataType.DATE: date,
}
_STANDARD = ("first_name", "last_name", "email", "phone", "date_of_birth")


@dataclass(frozen=True)
class DesiredContact:
    """The contact Cherry wants: standard fields plus Cherry custom-field values keyed by fieldKey.

    Money is `Decimal`, dates are `date`, everything else `str`. The Cherry fields are Cherry's: a key in
    `cleared` is one Cherry has no value for, so the CRM's value is emptied. A key in neither (Cherry's
    value could not be learned this time, e.g. a malformed estimates answer) is left as the CRM has it.
    `repr()` shows field names only. Treat instances as immutable; use `to_dict`/`from_dict` to pass one
    between tasks as JSON.
    """

    patient_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None  # E.164
    date_of_birth: date | None = None
    custom_fields: Mapping[str, FieldValue] = field(default_factory=dict)
    cleared: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Catch mapping bugs early, naming only the key: a wrong Python type would be written wrongly.
        for key, value in self.custom_fields.items():
            spec = FIELDS_BY_KEY.get(key)
            if spec is None:
                raise ValueError(f"not a Cherry custom field: {key}")
            expected = _PYTHON_TYPES[spec.data_type]
            # date is not a datetime here: a datetime would carry a time zone question into a DATE field.
            ok = type(value) is date if expected is date else isinstance(value, expected)
            if not ok:
                raise TypeError(f"custom field {key} needs a {expected.__name__} value")
            if spec.options and value not in spec.options:
                raise ValueError(f"custom field {key} got a value outside its options")
        object.__setattr__(self, "custom_fields", dict(self.custom_fields))
        cleared = frozenset(self.cleared)
        unknown = sorted(key for key in cleared if key not in FIELDS_BY_KEY)
        if unknown:
            raise ValueError(f"not a Cherry custom field: {unknown[0]}")
        both = sorted(cleared & set(self.custom_fields))
        if both:
            raise ValueError(f"custom field {both[0]} cannot both hold a value and be cleared")
        object.__setattr__(self, "cleared", cleared)

    def __repr__(self) -> str:
        present = [name for name in _STANDARD if getattr(self, name) is not None]
        return (
            f"DesiredContact(patient_id={self.patient_id!r}, fields={present}, "
            f"custom_fields={sorted(self.custom_fields)}, cleared={sorted(self.cleared)})"
        )

    def standard_fields(self) -> dict[str, str]:
        """The non-empty standard fields under their HighLevel names."""
        values = {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "phone": self.phone,
            "dateOfBirth": self.date_of_birth.isoformat() if self.date_of_birth else None,
        }
        return {name: value for name, value in values.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: money as "1234.50" strings, dates as "YYYY-MM-DD"."""
        return {
            "patient_id": self.patient_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "phone": self.phone,
            "date_of_birth": self.date_of_birth.isoformat() if self.date_of_birth else None,
            "custom_fields": {key: _to_json(value) for key, value in sorted(self.custom_fields.items())},
            "cleared": sorted(self.cleared),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DesiredContact:
        """Inverse of `to_dict`; custom values are re-typed from the catalogue's data types."""
        custom: dict[str, FieldValue] = {}
        for key, value in (data.get("custom_fields") or {}).items():
            spec = FIELDS_BY_KEY.get(key)
            if spec is None:
                raise ValueError(f"not a Cherry custom field: {key}")
            if spec.data_type is DataType.MONETORY:
                custom[key] = Decimal(value)
            elif spec.data_type is DataType.DATE:
                custom[key] = date.fromisoformat(value)
            else:
                custom[key] = value
        dob = data.get("date_of_birth")
        return cls(
            patient_id=data["patient_id"],
            first_name=data.get("first_name"),
            last_name=data.get("last_name"),
            email=data.get("email"),
            phone=data.get("phone"),
            date_of_birth=date.fromisoformat(dob) if dob else None,
            custom_fields=custom,
            cleared=frozenset(data.get("cleared") or ()),
        )


def _to_json(value: FieldValue) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return value
