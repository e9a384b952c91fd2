"""`CherryHook`: the Cherry partner API as defined in `sandbox/cherry/openapi.yaml` (docs/cherry-contract.md).

Connection (conn type `cherry`, registered by this package's provider entry point; an `http` connection works
too): host = base URL (e.g. `https://partner-api.withcherry.com` or the sandbox's `http://127.0.0.1:8101`),
password = the practice's API key. Optional extras: `connect_timeout`, `read_timeout`, `max_attempts`,
`max_elapsed_seconds`, `backoff_initial`, `backoff_max`, `burst_limit` and `burst_window_seconds` (pacing, default
18 per 1 s), and the TLS / proxy extras of every hook (`hooks.base`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests

from cherry_sync import provider
from cherry_sync.hooks import errors
from cherry_sync.hooks.base import PROBE_RETRY, ApiHook
from cherry_sync.hooks.pacing import PaceSettings
from cherry_sync.hooks.paging import CursorPaging, Page

MAX_PAGE_SIZE = 500


class CherryHook(ApiHook):
    """Read-only client of one practice's Cherry account."""

    conn_name_attr = "cherry_conn_id"
    default_conn_name = "cherry_default"
    conn_type = provider.CHERRY_CONN_TYPE
    hook_name = provider.CHERRY_HOOK_NAME
    service = "cherry"
    default_pace = PaceSettings(max_requests=18, window_seconds=1.0)
    conn_fields = provider.CHERRY_FIELDS

    def __init__(self, cherry_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(cherry_conn_id, **kwargs)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return copy.deepcopy(provider.CHERRY_FIELD_BEHAVIOUR)

    def ping(self) -> None:
        """`GET /v1/practice` once: the key is known and activated."""
        self.request("GET", "/v1/practice", op="GET /v1/practice", retry=PROBE_RETRY)

    # -- operations ------------------------------------------------------------------------------

    def get_practice(self) -> dict:
        """`GET /v1/practice`: id, name, timezone, locations."""
        return self.request("GET", "/v1/practice", op="GET /v1/practice")

    def iter_patient_pages(
        self,
        *,
        status: str | None = None,
        updated_since: datetime | None = None,
        limit: int = MAX_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Iterator[Page]:
        """`GET /v1/patients`, page by page, from `cursor` (None: the beginning) to the end."""
        params = _clean({"status": status, "updated_since": _ts(updated_since), "limit": _limit(limit)})
        return self._pages("/v1/patients", params, cursor)

    def get_patient(self, patient_id: str) -> dict:
        return self.request("GET", f"/v1/patients/{patient_id}", op="GET /v1/patients/{id}")

    def iter_event_pages(self, *, cursor: str | None = None, limit: int = MAX_PAGE_SIZE) -> Iterator[Page]:
        """`GET /v1/events` after `cursor`. The last page's `next_cursor` is where to resume next time."""
        return self._pages("/v1/events", {"limit": _limit(limit)}, cursor)

    def iter_payment_pages(
        self, *, updated_since: datetime | None = None, limit: int = MAX_PAGE_SIZE, cursor: str | None = None
    ) -> Iterator[Page]:
        params = _clean({"updated_since": _ts(updated_since), "limit": _limit(limit)})
        return self._pages("/v1/payments", params, cursor)

    def get_estimates(self, amount: Decimal) -> dict:
        """`GET /v1/estimates?amount=`: the practice's plans for that amount."""
        return self.request("GET", "/v1/estimates", op="GET /v1/estimates", params={"amount": f"{Decimal(amount):.2f}"})

    def get_patient_estimates(self, patient_id: str) -> dict:
        return self.request("GET", f"/v1/patients/{patient_id}/estimates", op="GET /v1/patients/{id}/estimates")

    def iter_marketing_asset_pages(self, *, limit: int = MAX_PAGE_SIZE, cursor: str | None = None) -> Iterator[Page]:
        return self._pages("/v1/marketing-assets", {"limit": _limit(limit)}, cursor)

    def download_asset(self, asset_id: str, *, max_bytes: int, chunk_size: int = 64 * 1024) -> bytes:
        """`GET /v1/marketing-assets/{id}/content`, streamed; refuses more than `max_bytes`."""
        op = "GET /v1/marketing-assets/{id}/content"
        response: requests.Response = self.request(
            "GET", f"/v1/marketing-assets/{asset_id}/content", op=op, stream=True
        )
        try:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise errors.ValidationError(op, f"asset is {declared} bytes, over the {max_bytes}-byte cap")
            buf = bytearray()
            for chunk in response.iter_content(chunk_size):
                buf.extend(chunk)
                if len(buf) > max_bytes:
                    raise errors.ValidationError(op, f"asset exceeds the {max_bytes}-byte cap")
            return bytes(buf)
        finally:
            response.close()

    def get_metrics(self, start: date, end: date) -> dict:
        """`GET /v1/reports/metrics`: reporting metrics for an inclusive date range (practice timezone)."""
        return self.request(
            "GET",
            "/v1/reports/metrics",
            op="GET /v1/reports/metrics",
            params={"start": start.isoformat(), "end": end.isoformat()},
        )

    def _pages(self, path: str, params: dict, cursor: str | None) -> Iterator[Page]:
        return self.paginate("GET", path, CursorPaging(params), op=f"GET {path}", start=cursor)

    # -- error shape -----------------------------------------------------------------------------

    def _error_details(self, response: requests.Response) -> tuple[str | None, str]:
        try:
            body = response.json()
            err = body.get("error") if isinstance(body, dict) else None
            if isinstance(err, dict):
                return err.get("code"), str(err.get("message", ""))
        except ValueError:
            pass
        return None, response.reason or ""

    def _forbidden(self, op: str, message: str, code: str | None) -> errors.ApiError:
        if code == "key_not_activated":
            return errors.KeyNotActivatedError(op, message, 403, code)
        return errors.ForbiddenError(op, message, 403, code)


def _limit(limit: int) -> int:
    return max(1, min(MAX_PAGE_SIZE, int(limit)))


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _clean(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}
