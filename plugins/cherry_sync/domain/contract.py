"""The value types of the Cherry contract, as pydantic `Annotated` types shared by every model that reads input.

Each type's validator enforces one rule of docs/cherry-contract.md and docs/field-mapping.md. A value that breaks
it raises a `PydanticCustomError` whose error *type* is the `ReasonCode` (``invalid_money``,
``invalid_timestamp``...) and whose message is a fixed description of the rule: never the value, which may be
patient data. `cherry_sync.domain.validation` turns those errors into `RecordRejected` and `FieldWarning`.

Absent and null mean the same to these types (`ContractModel` hands absent keys to them as None): a required type
raises ``missing_field`` for None, an optional one returns None.

Some problems only cost one detail of a record (a bad e-mail, phone or birth date): `droppable()` wraps such a type
so that its failure drops the field and records a warning in the validation context (`RecordContext`) instead of
failing the record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BeforeValidator, ValidationError, ValidationInfo, WrapValidator
from pydantic_core import PydanticCustomError

from cherry_sync.domain.contact_points import clean_name, normalise_email, normalise_phone
from cherry_sync.reasons import WARNING_CODES, ReasonCode

E = TypeVar("E", bound=Enum)

# Opaque ids ("pat_…", "pay_…", location ids): short tokens. A longer or spaced value is not an id and could be
# patient data pasted into the wrong column, so it is never echoed into an error.
_ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
# Plain decimal text: no sign, exponent, thousands separator or currency symbol.
_DECIMAL_TEXT = re.compile(r"^\d{1,12}(?:\.(\d{1,12}))?$")
# RFC 3339 date-time with a mandatory offset. datetime.fromisoformat alone also accepts ISO week dates, basic
# format and naive times, which the contract does not allow.
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Money never exceeds this in a patient-financing record (Cherry approvals top out around $50k).
MAX_MONEY = Decimal("99999999.99")
MONEY_PLACES = 2


def contract_error(reason: ReasonCode, message: str, *, field: str | None = None) -> PydanticCustomError:
    """The error a contract type raises: typed by `reason`, with a fixed `message` that holds no input value.

    `field` names the field for a rule checked on the whole model (pydantic locates those at the model itself).
    """
    return PydanticCustomError(reason.value, message, {"field": field} if field else None)


# -- the validation context: phone region and dropped fields -----------------------------------------------


@dataclass(slots=True)
class RecordContext:
    """What a record's validators need beyond the record: the region of national phone numbers, and where
    fields dropped with a warning are noted (reason, field name) so the parse can report them."""

    phone_region: str = "US"
    dropped: list[tuple[ReasonCode, str]] = field(default_factory=list)


def drop_field(info: ValidationInfo, reason: ReasonCode) -> None:
    """Note that the field being validated is dropped for `reason` (a warning code).

    Without a `RecordContext` there is nowhere to report the drop, so the problem is an error after all.
    """
    context = info.context
    if not isinstance(context, RecordContext) or info.field_name is None:
        raise contract_error(reason, "field is unusable and no validation context collects dropped fields")
    context.dropped.append((reason, info.field_name))


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _drop_when_unusable(value: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
    if _blank(value):
        return None
    try:
        return handler(value)
    except ValidationError as exc:
        # include_input=False: this error is read for its type only, and its input is patient data.
        reasons = {detail["type"] for detail in exc.errors(include_url=False, include_input=False)}
        if len(reasons) != 1 or (reason := next(iter(reasons))) not in WARNING_CODES:
            raise
    drop_field(info, ReasonCode(reason))
    return None


def droppable(value_type: Any) -> Any:
    """`value_type`, optional, whose warning-coded failure (invalid e-mail, phone, date) drops only this field.

    Absent, null and blank text read as None without a warning.
    """
    return Annotated[value_type | None, WrapValidator(_drop_when_unusable)]


# -- ids --------------------------------------------------------------------------------------------------


def opaque_id(value: object) -> str | None:
    """`value` stripped, if it is a short opaque token ("pat_0001", "loc_sf_01"); None otherwise."""
    if not isinstance(value, str):
        return None
    token = value.strip()
    return token if _ID_SHAPE.match(token) else None


def _own_id(value: object) -> str:
    if _blank(value):
        raise contract_error(ReasonCode.MISSING_ID, "record has no id")
    token = opaque_id(value)
    if token is None:
        raise contract_error(ReasonCode.INVALID_ID, "id is not a short opaque token")
    return token


def _reference(value: object) -> str:
    if _blank(value):
        raise contract_error(ReasonCode.MISSING_FIELD, "required reference is missing")
    return _optional_reference(value)  # type: ignore[return-value]  # not blank, so never None


def _optional_reference(value: object) -> str | None:
    if _blank(value):
        return None
    token = opaque_id(value)
    if token is None:
        raise contract_error(ReasonCode.INVALID_ID, "reference is not a short opaque token")
    return token


OwnId = Annotated[str, BeforeValidator(_own_id)]
"""The record's own id: absent or blank is ``missing_id``, any other non-token ``invalid_id``."""
Reference = Annotated[str, BeforeValidator(_reference)]
"""A required id of another object (location, patient): absent is ``missing_field``, a non-token ``invalid_id``."""
OptionalReference = Annotated[str | None, BeforeValidator(_optional_reference)]
"""An id of another object that may be absent."""


# -- text -----------------------------------------------------------------------------------------------


def bounded_text(max_length: int) -> Any:
    """Optional free text cleaned like a name (trimmed, whitespace collapsed; blank is None).

    Not a string is ``invalid_record``; longer than `max_length` after cleaning is ``oversize_text``.
    """

    def check(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise contract_error(ReasonCode.INVALID_RECORD, "expected a string")
        cleaned = clean_name(value)
        if cleaned is not None and len(cleaned) > max_length:
            raise contract_error(ReasonCode.OVERSIZE_TEXT, f"text longer than {max_length} characters")
        return cleaned

    return Annotated[str | None, BeforeValidator(check)]


# -- numbers ----------------------------------------------------------------------------------------------


def _decimal_text(value: object, *, json_numbers: bool) -> str | None:
    """The text a number was written as, or None when `value` is no number (a bool is not one: True is not $1)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else None
    if not json_numbers or isinstance(value, bool):
        return None
    if isinstance(value, float):
        # repr() of a float is the shortest text that round-trips, so 1234.5 reads as 1234.5 exactly.
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return None


def decimal_type(
    reason: ReasonCode,
    *,
    places: int,
    maximum: Decimal,
    required: bool = False,
    positive: bool = False,
    json_numbers: bool = True,
    what: str = "number",
) -> Any:
    """A plain non-negative decimal with at most `places` places and at most `maximum`, read exactly as `Decimal`.

    Anything else (a sign, exponent, separator, currency symbol, NaN, a bool, too many places) is `reason`.
    `positive` also refuses zero. `json_numbers` False takes only JSON strings, as the contract writes numbers.
    Absent or null is ``missing_field`` when `required`, else None.
    """
    if positive:
        shape = f"expected a decimal {what} greater than 0 with at most {places} places"
    else:
        shape = f"expected a non-negative decimal {what} with at most {places} places"

    def check(value: object) -> Decimal | None:
        if value is None:
            if required:
                raise contract_error(ReasonCode.MISSING_FIELD, f"required {what} is missing")
            return None
        text = _decimal_text(value, json_numbers=json_numbers)
        match = _DECIMAL_TEXT.match(text) if text is not None else None
        if match is None or (match.group(1) is not None and len(match.group(1)) > places):
            raise contract_error(reason, shape)
        number = Decimal(match.group(0))
        if number > maximum:
            raise contract_error(reason, f"{what} above {maximum}")
        if positive and not number:
            raise contract_error(reason, shape)
        return number

    return Annotated[Decimal if required else Decimal | None, BeforeValidator(check)]


Money = decimal_type(ReasonCode.INVALID_MONEY, places=MONEY_PLACES, maximum=MAX_MONEY, what="amount")
"""An optional amount in dollars: non-negative, at most two places, at most `MAX_MONEY` (else ``invalid_money``)."""
RequiredMoney = decimal_type(
    ReasonCode.INVALID_MONEY, places=MONEY_PLACES, maximum=MAX_MONEY, required=True, what="amount"
)
"""`Money` that must be present."""
Percent = decimal_type(ReasonCode.INVALID_NUMBER, places=4, maximum=Decimal(100), required=True, what="percentage")
"""A required APR in percent, 0 to 100 ("17.99" is 17.99 %); anything else is ``invalid_number``."""


def whole_number(minimum: int, maximum: int | None = None) -> Any:
    """A required JSON integer from `minimum` to `maximum` (None: no upper bound); else ``invalid_number``."""
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"

    def check(value: object) -> int:
        if value is None:
            raise contract_error(ReasonCode.MISSING_FIELD, "required number is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise contract_error(ReasonCode.INVALID_NUMBER, "expected a whole number")
        if value < minimum or (maximum is not None and value > maximum):
            raise contract_error(ReasonCode.INVALID_NUMBER, f"expected a whole number {bounds}")
        return value

    return Annotated[int, BeforeValidator(check)]


Count = whole_number(0)
"""A required count: a JSON integer, 0 or more."""


# -- flags and enums ---------------------------------------------------------------------------------------


def _flag(value: object) -> bool:
    if value is None:
        raise contract_error(ReasonCode.MISSING_FIELD, "required flag is missing")
    if not isinstance(value, bool):
        raise contract_error(ReasonCode.INVALID_RECORD, "expected true or false")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
"""A required JSON true/false; a string such as "yes" is ``invalid_record``."""


def contract_enum(enum_type: type[E], *, required: bool, reason: ReasonCode = ReasonCode.UNKNOWN_STATUS) -> Any:
    """One of `enum_type`'s values, matched exactly (case-sensitive); anything else is `reason`."""
    members = {member.value: member for member in enum_type}

    def check(value: object) -> E | None:
        if value is None:
            if required:
                raise contract_error(ReasonCode.MISSING_FIELD, "required status is missing")
            return None
        member = members.get(value) if isinstance(value, str) else None
        if member is None:
            raise contract_error(reason, "value is not one of the documented values")
        return member

    return Annotated[enum_type if required else enum_type | None, BeforeValidator(check)]


# -- time -------------------------------------------------------------------------------------------------


def parse_rfc3339(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp (offset required) into an aware UTC datetime; None if invalid."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    day, clock, fraction, offset = match.groups()
    # Python keeps microseconds; nanosecond digits beyond six are truncated, not rounded.
    micro = f".{fraction[:6]}" if fraction else ""
    offset = "+00:00" if offset in {"Z", "z"} else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{offset}").astimezone(UTC)
    except ValueError:  # impossible calendar dates and clock times (2023-02-30, 25:00:00)
        return None


def parse_iso_date(value: object) -> date | None:
    """Parse "YYYY-MM-DD" into a date; None for anything else, including impossible dates."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _optional_timestamp(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise contract_error(ReasonCode.INVALID_TIMESTAMP, "expected an RFC 3339 timestamp with an offset")
    return parsed


def _timestamp(value: object) -> datetime:
    if value is None:
        raise contract_error(ReasonCode.MISSING_FIELD, "required timestamp is missing")
    return _optional_timestamp(value)  # type: ignore[return-value]  # not None in, not None out


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp)]
"""A required RFC 3339 timestamp with an offset, as an aware UTC datetime (else ``invalid_timestamp``)."""
OptionalTimestamp = Annotated[AwareDatetime | None, BeforeValidator(_optional_timestamp)]
"""A `Timestamp` that may be absent."""


def _calendar_date(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    parsed = parse_iso_date(value)
    if parsed is None:
        raise contract_error(ReasonCode.INVALID_DATE, "expected a real YYYY-MM-DD date")
    return parsed


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
"""A real "YYYY-MM-DD" date (not 2023-02-30); else ``invalid_date``, a warning code (see `droppable`)."""


# -- contact points -----------------------------------------------------------------------------------------


def _email(value: object) -> str:
    email = normalise_email(value)
    if email is None:
        raise contract_error(ReasonCode.INVALID_EMAIL, "not a valid email address")
    return email


def _phone(value: object, info: ValidationInfo) -> str:
    region = info.context.phone_region if isinstance(info.context, RecordContext) else "US"
    phone = normalise_phone(value, region)
    if phone is None:
        raise contract_error(ReasonCode.INVALID_PHONE, "not a valid phone number")
    return phone


Email = Annotated[str, BeforeValidator(_email)]
"""A syntactically valid e-mail address, trimmed, domain lower-cased (contact_points.normalise_email)."""
Phone = Annotated[str, BeforeValidator(_phone)]
"""A valid phone number as E.164; national numbers are read in the context's `phone_region` (default US)."""


# -- JSON shapes -----------------------------------------------------------------------------------------------


def _json_object(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise contract_error(ReasonCode.INVALID_RECORD, "expected a JSON object")
    return dict(value)


def _objects(value: object) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple):  # already models (a model built in code, not read from JSON)
        return value
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise contract_error(ReasonCode.INVALID_RECORD, "expected a list of JSON objects")
    return tuple(value)


JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
"""A nested JSON object kept as it is; absent or null reads as empty, anything else is ``invalid_record``."""


def list_of_objects(item_type: Any) -> Any:
    """A JSON list of objects, each validated as `item_type`; absent or null reads as empty."""
    return Annotated[tuple[item_type, ...], BeforeValidator(_objects)]


# -- configuration ----------------------------------------------------------------------------------------------


def zone_named(name: object) -> ZoneInfo | None:
    """The IANA time zone called `name`, or None when there is none by that name."""
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _time_zone_name(value: object) -> str:
    if not isinstance(value, str):
        raise contract_error(ReasonCode.INVALID_TIMEZONE, "expected an IANA timezone name (e.g. America/New_York)")
    if zone_named(value) is None:
        # A zone name is configuration, never patient data: naming it tells the operator what to fix.
        raise contract_error(ReasonCode.INVALID_TIMEZONE, f"unknown IANA timezone {value!r} (e.g. America/New_York)")
    return value


TimeZoneName = Annotated[str, BeforeValidator(_time_zone_name)]
"""An IANA time zone name ("America/New_York"); anything else is ``invalid_timezone``."""
