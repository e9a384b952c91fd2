"""Validating input against the contract: the base model, and pydantic's errors turned into `RecordRejected`.

Every model of Cherry input (patients, payments, events, estimates, the reporting metrics) is a `ContractModel`
whose fields use the types of `cherry_sync.domain.contract`. `validate_record()` validates one raw JSON value and
raises `RecordRejected` for the first rule it breaks, with that rule's reason code and field name. pydantic's
errors are read with ``include_input=False`` and the rejection is raised outside the ``except`` block, so neither
its message nor a chained traceback can quote the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

from cherry_sync.domain.contract import RecordContext, opaque_id
from cherry_sync.domain.errors import Entity, RecordRejected
from cherry_sync.reasons import ReasonCode

M = TypeVar("M", bound="ContractModel")

_REASONS = {code.value: code for code in ReasonCode}


class ContractModel(BaseModel):
    """A validated, immutable piece of Cherry input.

    Absent keys read as null (the contract treats them alike), so every field's own type decides whether it is
    required; unknown keys are ignored, so Cherry can add fields without breaking the sync. Validation errors
    never show the input (`hide_input_in_errors`), even when such a model is validated outside
    `validate_record()`. Strict: a validator that hands back the wrong Python type is a bug, not coerced.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", hide_input_in_errors=True)

    _field_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._field_names = tuple(cls.model_fields)

    @model_validator(mode="before")
    @classmethod
    def _absent_is_null(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {name: data.get(name) for name in cls._field_names}
        return data  # not a JSON object: pydantic refuses it (invalid_record)


def validate_record(
    model: type[M],
    raw: object,
    entity: Entity,
    *,
    source_id: str | None = None,
    context: RecordContext | None = None,
    rejection: type[RecordRejected] = RecordRejected,
) -> M:
    """Validate `raw` as `model`, or raise `rejection` (a `RecordRejected`) for the first rule it breaks.

    `source_id` labels errors of input without an id of its own (estimates: the location or patient asked
    about); otherwise the record's own id names it once that id is valid. `context` collects dropped fields.
    """
    try:
        return model.model_validate(raw, context=context if context is not None else RecordContext())
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False)
        if source_id is None and "id" in model.model_fields:
            source_id = _own_id_of(raw, details)
        error = _rejection(rejection, entity, source_id, details[0])
    raise error


def _own_id_of(raw: object, details: list[ErrorDetails]) -> str | None:
    if not isinstance(raw, Mapping) or any(detail["loc"][:1] == ("id",) for detail in details):
        return None
    return opaque_id(raw.get("id"))


def _rejection(
    rejection: type[RecordRejected], entity: Entity, source_id: str | None, detail: ErrorDetails
) -> RecordRejected:
    field = (detail.get("ctx") or {}).get("field") or field_path(detail["loc"])
    reason = _REASONS.get(detail["type"])
    if reason is not None:
        # One of the contract's own errors: its message is a fixed rule description.
        return rejection(entity, source_id, reason, field, detail["msg"])
    # pydantic's own errors (a model or nested object of the wrong JSON type) are wrong shapes. Their messages
    # are not ours to vouch for, so a fixed one is used.
    if field is None:
        return rejection(entity, source_id, ReasonCode.INVALID_RECORD, None, "record is not a JSON object")
    return rejection(entity, source_id, ReasonCode.INVALID_RECORD, field, "field has the wrong JSON type")


def field_path(loc: tuple[int | str, ...]) -> str | None:
    """A pydantic location as a field name: ("plans", 1, "apr") -> "plans[1].apr"; None for the record itself."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None
