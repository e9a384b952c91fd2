"""The Cherry API contract (openapi.yaml) as data, and JSON-Schema validation against its components.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the whole document is registered as one 2020-12
resource and a component is validated through a `$ref` into it. Hook and DAG tests can use
`validate("Patient", body)` to check that what they fake or receive matches the contract.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CONTRACT_PATH = Path(__file__).with_name("openapi.yaml")
CONTRACT_URI = "urn:cherry-sandbox:openapi"


@lru_cache(maxsize=1)
def load_contract() -> dict[str, Any]:
    """The parsed openapi.yaml (cached; do not mutate)."""
    with CONTRACT_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _is_date_time(value: object) -> bool:
    # jsonschema checks "date-time" only when the optional rfc3339-validator is installed; do it here.
    if not isinstance(value, str):
        return True
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


@lru_cache(maxsize=1)
def registry():
    """A `referencing` registry holding the contract, for validating against any part of it."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    return Registry().with_resource(CONTRACT_URI, Resource(load_contract(), specification=DRAFT202012))


def validator_for_schema(schema: dict[str, Any]):
    """A validator for any schema whose $refs point into the contract (use `CONTRACT_URI#/...`)."""
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker()
    checker.checks("date-time")(_is_date_time)
    return Draft202012Validator(schema, registry=registry(), format_checker=checker)


@lru_cache(maxsize=64)
def validator_for(component: str):
    """A jsonschema validator for `#/components/schemas/<component>`."""
    return validator_for_schema({"$ref": f"{CONTRACT_URI}#/components/schemas/{component}"})


def validate(component: str, instance: Any) -> None:
    """Raise jsonschema.ValidationError unless `instance` matches the named component schema."""
    validator_for(component).validate(instance)


def errors(component: str, instance: Any) -> list[str]:
    """Every mismatch between `instance` and the component schema, as short messages (empty when valid)."""
    found = validator_for(component).iter_errors(instance)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in found]
