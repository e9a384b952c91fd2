"""Cherry's error body, `{"error": {"code": "<snake_case>", "message": "<text>"}}`, for every failure.

Messages are fixed texts: they never echo a request value, so no patient data can reach an error body
(or a log line built from one).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

CODES_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "key_not_activated",
    404: "not_found",
    405: "method_not_allowed",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error answer: HTTP status, snake_case code, fixed message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def middleware_error(status: int, message: str, _short: str) -> JSONResponse:
    """The ErrorFactory for sandbox.common.middleware (rate limits and injected faults)."""
    code = "internal_error" if status >= 500 else CODES_BY_STATUS.get(status, "invalid_request")
    return error_response(status, code, message)


def _describe(exc: RequestValidationError) -> str:
    # Name the parameter, never its value.
    names = sorted({str(err.get("loc", ("", "?"))[-1]) for err in exc.errors()})
    return "invalid or missing parameter: " + ", ".join(names) if names else "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Every error, including FastAPI's own 404/405/422 and unexpected exceptions, in Cherry's shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_request", _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = CODES_BY_STATUS.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "invalid_request")
        message = {404: "resource not found", 405: "method not allowed"}.get(exc.status_code, "request failed")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "internal error")
