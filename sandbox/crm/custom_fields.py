"""Location custom fields: definitions and the type check applied to every value written to one.

The check is strict on purpose (a numeric string is not a number, an option must be one of the
field's options) so that mapping bugs surface in tests instead of as silently wrong CRM data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.crm import normalize
from sandbox.crm.errors import bad_request, unprocessable

DATA_TYPES = (
    "TEXT",
    "LARGE_TEXT",
    "NUMERICAL",
    "PHONE",
    "MONETORY",  # sic: HighLevel's spelling; MONETARY is rejected like any unknown type
    "CHECKBOX",
    "SINGLE_OPTIONS",
    "MULTIPLE_OPTIONS",
    "DATE",
    "TEXTBOX_LIST",
    "FILE_UPLOAD",
    "RADIO",
    "EMAIL",
)
OPTION_TYPES = frozenset({"SINGLE_OPTIONS", "MULTIPLE_OPTIONS", "RADIO", "CHECKBOX"})
MODELS = ("contact", "opportunity")


@dataclass(slots=True)
class CustomField:
    """One custom field of a location."""

    id: str
    location_id: str
    name: str
    field_key: str
    data_type: str
    model: str = "contact"
    placeholder: str = ""
    position: float = 0
    options: list[str] = field(default_factory=list)
    description: str | None = None
    parent_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "fieldKey": self.field_key,
            "placeholder": self.placeholder,
            "dataType": self.data_type,
            "position": self.position,
            "picklistOptions": list(self.options) if self.data_type in OPTION_TYPES else [],
            "locationId": self.location_id,
            "model": self.model,
        }
        if self.description is not None:
            out["description"] = self.description
        if self.parent_id is not None:
            out["parentId"] = self.parent_id
        out.update(self.extra)
        return out


def field_key_for(model: str, name: str, given: str | None) -> str:
    """fieldKey as stored: derived from the name, or the given one with the model prefix added."""
    if given is None:
        base = normalize.snake(name)
        if not base:
            raise unprocessable("name must contain letters or digits")
        return f"{model}.{base}"
    key = given.strip()
    if not key:
        raise unprocessable("fieldKey should not be empty")
    return key if key.startswith(f"{model}.") else f"{model}.{key}"


class FieldRegistry:
    """The custom fields of one location, by id and by fieldKey. Callers hold the state lock."""

    def __init__(self) -> None:
        self.by_id: dict[str, CustomField] = {}
        self.by_key: dict[str, CustomField] = {}

    def add(self, cf: CustomField) -> None:
        if cf.field_key in self.by_key:
            raise bad_request(f"Custom field with key {cf.field_key} already exists")
        self.by_id[cf.id] = cf
        self.by_key[cf.field_key] = cf

    def remove(self, field_id: str) -> None:
        cf = self.by_id.pop(field_id)
        self.by_key.pop(cf.field_key, None)

    def resolve(self, model: str, field_id: str | None, key: str | None) -> CustomField:
        """The field a write item refers to, by id or by key (with or without the model prefix)."""
        cf = None
        if field_id:
            cf = self.by_id.get(field_id)
        elif key:
            cf = self.by_key.get(key) or self.by_key.get(f"{model}.{key}")
        ref = field_id or key
        if cf is None:
            raise unprocessable(f"customFields: custom field {ref} does not exist in this location")
        if cf.model != model:
            raise unprocessable(f"customFields: custom field {ref} belongs to {cf.model}, not {model}")
        return cf


MISSING = object()  # no field_value sent at all


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


CLEAR = ""  # the one form that empties a custom field, whatever its type


def check_value(cf: CustomField, value: Any = MISSING) -> Any:
    """The value to store for `cf` (None: the field is emptied), or a 422 naming the field and the rule.

    An empty string clears the field, for every type. `null` and a missing value are refused: neither is a
    documented way to clear, and a client sending them has a bug worth seeing (the sync must send "").
    """
    t = cf.data_type
    where = f"customFields: value for {cf.field_key} ({t})"
    if value is MISSING:
        raise unprocessable(f'customFields: field_value for {cf.field_key} is required (send "" to clear it)')
    if value is None:
        raise unprocessable(f'{where} must not be null (send "" to clear it)')
    if value == CLEAR:
        return None
    if t in ("TEXT", "LARGE_TEXT", "PHONE", "EMAIL"):
        if not isinstance(value, str):
            raise unprocessable(f"{where} must be a string")
        return value
    if t in ("SINGLE_OPTIONS", "RADIO"):
        if not isinstance(value, str):
            raise unprocessable(f"{where} must be a string")
        if value not in cf.options:
            raise unprocessable(f"{where} must be one of the field's options: {', '.join(cf.options)}")
        return cf.options[cf.options.index(value)]  # the field's own string, shared by all contacts
    if t in ("NUMERICAL", "MONETORY"):
        if not _is_number(value):
            raise unprocessable(f"{where} must be a number")
        return value
    if t == "DATE":
        epoch_ms = date_value(value)
        if epoch_ms is None:
            raise unprocessable(f"{where} must be a YYYY-MM-DD string or epoch milliseconds")
        return epoch_ms
    if t in ("CHECKBOX", "MULTIPLE_OPTIONS"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise unprocessable(f"{where} must be an array of strings")
        unknown = [v for v in value if v not in cf.options]
        if unknown:
            raise unprocessable(f"{where} has values that are not options: {', '.join(unknown)}")
        return [cf.options[cf.options.index(v)] for v in value]
    if t in ("FILE_UPLOAD", "TEXTBOX_LIST"):
        if not isinstance(value, dict | list):
            raise unprocessable(f"{where} must be an object")
        return value
    return value


def date_value(value: Any) -> int | None:
    return normalize.date_to_epoch_ms(value)


def apply_writes(
    registry: FieldRegistry, model: str, items: list[dict[str, Any]], current: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Merge write items into the stored {field id: value} map; returns the new map (None when empty).

    Validates every item before changing anything, so a rejected request leaves the record untouched.
    """
    updates: dict[str, Any] = {}
    for item in items:
        cf = registry.resolve(model, item.get("id"), item.get("key"))
        updates[cf.id] = check_value(cf, item.get("value", MISSING))
    merged = dict(current or {})
    for field_id, value in updates.items():
        if value is None:
            merged.pop(field_id, None)
        else:
            merged[field_id] = value
    return merged or None
