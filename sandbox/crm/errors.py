"""HighLevel's error bodies: `{statusCode, message, error}`, with `message` an array on 422.

The real API is NestJS with class-validator whitelisting, so validation failures read like
"property foo should not exist" or "email must be an email". Pydantic errors are translated into that
style here so a client sees the same shapes it will see in production.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(status: int, message: str | list[str], error: str | None = None, **extra: Any) -> JSONResponse:
    """The body every CRM error has. `extra` adds fields such as `meta` on duplicate-contact errors."""
    body: dict[str, Any] = {"statusCode": status, "message": message, "error": error or reason(status)}
    body.update(extra)
    body["traceId"] = str(uuid.uuid4())
    return JSONResponse(body, status_code=status)


class CrmError(Exception):
    """Raised by handlers and state; rendered as a HighLevel error body."""

    def __init__(self, status: int, message: str | list[str], **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def bad_request(message: str, **extra: Any) -> CrmError:
    return CrmError(400, message, **extra)


def not_found(message: str) -> CrmError:
    return CrmError(404, message)


def forbidden(message: str = "The token does not have access to this location") -> CrmError:
    return CrmError(403, message)


def unprocessable(*messages: str) -> CrmError:
    return CrmError(422, list(messages))


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "any"})


def _field(loc: tuple) -> tuple[str, str]:
    """(dotted parent path, leaf name) of a pydantic error location, without the 'body'/'query' prefix."""
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header", "form") else list(loc)
    # Union members add their type name to the location; they mean nothing to a client.
    parts = [p for p in parts if "[" not in p and p not in _TYPE_TAGS]
    if not parts:
        return "", "body"
    return ".".join(parts[:-1]), parts[-1]


def validation_messages(errors: list[dict]) -> list[str]:
    """class-validator style messages for pydantic errors."""
    out: list[str] = []
    for err in errors:
        parent, name = _field(tuple(err.get("loc", ())))
        prefix = f"{parent}." if parent else ""
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            msg = f"{prefix}property {name} should not exist"
        elif kind == "missing":
            msg = f"{prefix}{name} should not be empty"
        elif kind.startswith("string") and kind != "string_too_long":
            msg = f"{prefix}{name} must be a string"
        elif kind == "string_too_long":
            limit = (err.get("ctx") or {}).get("max_length")
            msg = f"{prefix}{name} must be shorter than or equal to {limit} characters"
        elif kind.startswith(("int", "float", "decimal")):
            msg = f"{prefix}{name} must be a number conforming to the specified constraints"
        elif kind.startswith("bool"):
            msg = f"{prefix}{name} must be a boolean value"
        elif kind in ("list_type", "tuple_type"):
            msg = f"{prefix}{name} must be an array"
        elif kind == "too_long":
            limit = (err.get("ctx") or {}).get("max_length")
            msg = f"{prefix}{name} must contain no more than {limit} elements"
        elif kind == "too_short":
            limit = (err.get("ctx") or {}).get("min_length")
            msg = f"{prefix}{name} must contain at least {limit} elements"
        elif kind in ("literal_error", "enum"):
            expected = (err.get("ctx") or {}).get("expected", "")
            msg = f"{prefix}{name} must be one of the following values: {expected.replace(' or ', ', ')}"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            msg = f"{prefix}{name} must be an object"
        elif kind == "value_error":
            msg = str((err.get("ctx") or {}).get("error", err.get("msg", "")))
        else:
            msg = f"{prefix}{name}: {err.get('msg', 'is invalid')}"
        if msg not in out:
            out.append(msg)
    return out


def install_handlers(app: FastAPI) -> None:
    """Render every error the app can raise in HighLevel's shape."""

    @app.exception_handler(CrmError)
    async def crm_error(_: Request, exc: CrmError) -> JSONResponse:
        return error_response(exc.status, exc.message, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "Unexpected token in JSON body")
        return error_response(422, validation_messages(errors), "Unprocessable Entity")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes answer like NestJS does ("Cannot GET /foo").
        message = f"Cannot {request.method} {request.url.path}" if exc.status_code in (404, 405) else exc.detail
        status = 404 if exc.status_code == 405 else exc.status_code
        return error_response(status, str(message))
