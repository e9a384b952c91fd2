"""`CherrySandbox`: a Cherry sandbox running on a free loopback port, with helpers for tests.

    with CherrySandbox.start(practices=2, patients_per_practice=40) as cherry:
        practice = cherry.practices[0]
        rows = cherry.fetch_all("/v1/patients", practice, status="ACTIVE")
        cherry.advance(minutes=30, new_patients=3, duplicate_share=0.2)

Hook, operator and DAG tests use it through the `cherry_sandbox` / `cherry_sandbox_factory` fixtures
(tests/fixtures/cherry_sandbox.py). Admin helpers raise on an error status, so a test fails loudly.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import requests

from sandbox.cherry.app import create_app
from sandbox.cherry.config import CherrySandboxConfig
from sandbox.cherry.state import CherryState
from sandbox.common.server import RunningServer, admin_session, start_in_thread

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class PracticeInfo:
    """A seeded practice and its demo API key (activated)."""

    id: str
    name: str
    timezone: str
    api_key: str
    location_ids: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


class CherrySandbox:
    """Handle on a running sandbox: base URL, practices, public-API and admin helpers, stop()."""

    def __init__(self, config: CherrySandboxConfig, server: RunningServer, app) -> None:
        self.config = config
        self.server = server
        self.app = app
        self.base_url = server.base_url
        self.http = admin_session()
        self.practices = [
            PracticeInfo(
                id=row["id"],
                name=row["name"],
                timezone=row["timezone"],
                api_key=next(k["api_key"] for k in row["api_keys"] if k["activated"]),
                location_ids=tuple(loc["id"] for loc in row["locations"]),
            )
            for row in self.admin("GET", "/practices")
        ]

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, config: CherrySandboxConfig | None = None, **overrides: Any) -> CherrySandbox:
        """Build the app from `config` (or defaults) updated with `overrides`, and serve it."""
        base = config or CherrySandboxConfig()
        if overrides:
            merged = base.model_dump()
            for key, value in overrides.items():
                # rate_limits={"burst_limit": 5} keeps the other Cherry defaults (daily limit, window...).
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            base = CherrySandboxConfig.model_validate(merged)
        app = create_app(base)
        return cls(base, start_in_thread(app, log_level=base.log_level), app)

    def stop(self, wait: bool = True) -> None:
        """Shut the server down; `wait=False` only signals it (it exits within ~0.1 s, on its own thread)."""
        self.http.close()
        self.state.webhooks.stop()
        if wait:
            self.server.stop()
        else:
            self.server.server.should_exit = True

    def __enter__(self) -> CherrySandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> CherryState:
        """The in-process state (read it under `state.lock` if the server is busy)."""
        return self.app.state.cherry

    @property
    def controls(self):
        return self.app.state.controls

    # -- public API --------------------------------------------------------------------------------
    def practice(self, which: int | str = 0) -> PracticeInfo:
        if isinstance(which, int):
            return self.practices[which]
        return next(p for p in self.practices if which in (p.id, p.api_key))

    def get(
        self,
        path: str,
        practice: PracticeInfo | int | str | None = 0,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> requests.Response:
        """GET a public path as `practice` (or with `api_key`; practice=None and no key sends no auth)."""
        headers = {}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        elif practice is not None:
            info = practice if isinstance(practice, PracticeInfo) else self.practice(practice)
            headers = info.headers
        return self.http.get(self.base_url + path, headers=headers, params=params or None, timeout=timeout)

    def fetch_all(
        self, path: str, practice: PracticeInfo | int | str = 0, limit: int = 500, **params: Any
    ) -> list[dict]:
        """Every row of a list endpoint, following cursors until has_more is false."""
        rows: list[dict] = []
        cursor = None
        while True:
            query = dict(params, limit=limit)
            if cursor:
                query["cursor"] = cursor
            response = self.get(path, practice, **query)
            response.raise_for_status()
            body = response.json()
            rows.extend(body["data"])
            if not body["has_more"]:
                return rows
            cursor = body["next_cursor"]

    # -- admin -------------------------------------------------------------------------------------
    def admin(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        """Call `/_sandbox<path>`; raises requests.HTTPError on an error status."""
        response = self.http.request(
            method, f"{self.base_url}/_sandbox{path}", json=json, params=params or None, timeout=DEFAULT_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    def advance(self, minutes: float = 60, **changes: Any) -> dict:
        """POST /_sandbox/advance (new_patients, refreshed, payments, refunds, cancellations, pings,
        abandoned_applications, deactivations, duplicate_share, out_of_order_share, practice_id)."""
        return self.admin("POST", "/advance", json={"minutes": minutes, **changes})

    def edit_patient(self, patient_id: str, **changes: Any) -> dict:
        """PATCH /_sandbox/patients/{id}: new contact/identity values, announced by patient.refreshed."""
        return self.admin("PATCH", f"/patients/{patient_id}", json=changes)

    def settle_payment(self, payment_id: str, kind: str) -> dict:
        """Cancel ("cancel"), refund ("refund") or partially refund ("partial") a COMPLETED payment."""
        return self.admin("POST", f"/payments/{payment_id}/settle", json={"kind": kind})

    def corrupt(self, record_id: str, kind: str, object_type: str = "patient") -> dict:
        return self.admin("POST", "/malformed", json={"id": record_id, "kind": kind, "object_type": object_type})

    def repair(self, record_id: str) -> dict:
        return self.admin("DELETE", f"/malformed/{record_id}")

    def create_key(self, practice: PracticeInfo | int | str = 0, activated: bool = True, name: str = "test") -> str:
        info = practice if isinstance(practice, PracticeInfo) else self.practice(practice)
        body = {"practice_id": info.id, "activated": activated, "name": name}
        return self.admin("POST", "/keys", json=body)["api_key"]

    def set_key(self, api_key: str, activated: bool | None = None, revoked: bool | None = None) -> dict:
        body = {k: v for k, v in (("activated", activated), ("revoked", revoked)) if v is not None}
        return self.admin("PUT", f"/keys/{api_key}", json=body)

    def subscribe_webhooks(
        self, practice: PracticeInfo | int | str, url: str, secret: str, enabled: bool = True
    ) -> dict:
        """PUT /_sandbox/webhooks/{practice_id}: deliver the practice's new events to `url`, signed with `secret`."""
        info = practice if isinstance(practice, PracticeInfo) else self.practice(practice)
        return self.admin("PUT", f"/webhooks/{info.id}", json={"url": url, "secret": secret, "enabled": enabled})

    def set_webhook_settings(self, **settings: Any) -> dict:
        """PUT /_sandbox/webhooks (sandbox.cherry.webhooks.WebhookSettings); no arguments restores the defaults."""
        return self.admin("PUT", "/webhooks", json=settings)

    def webhooks(self) -> dict:
        """GET /_sandbox/webhooks: settings, subscriptions with delivery counters, deliveries pending."""
        return self.admin("GET", "/webhooks")

    def webhook_ping(self, practice: PracticeInfo | int | str = 0) -> str:
        info = practice if isinstance(practice, PracticeInfo) else self.practice(practice)
        return self.admin("POST", f"/webhooks/{info.id}/ping")["event_id"]

    def fired_faults(self) -> dict[str, int]:
        """How many of each fault the sandbox has injected since it started (GET /_sandbox/faults)."""
        return self.admin("GET", "/faults")["fired"]

    def set_faults(self, **settings: Any) -> dict:
        """PUT /_sandbox/faults (see sandbox.common.faults.FaultSettings); no arguments clears them."""
        return self.admin("PUT", "/faults", json=settings)

    def set_rate_limits(self, **settings: Any) -> dict:
        return self.admin("PUT", "/rate-limits", json=settings)

    def stats(self) -> dict:
        return self.admin("GET", "/stats")

    def reset_stats(self) -> dict:
        return self.admin("POST", "/stats/reset")

    def now(self) -> str:
        return self.admin("GET", "/clock")["now"]

    def add_asset(
        self, category: str, name: str, content_type: str = "image/png", content: bytes | None = None
    ) -> dict:
        body = {"category": category, "name": name, "content_type": content_type}
        if content is not None:
            body["content_base64"] = base64.b64encode(content).decode()
        return self.admin("POST", "/assets", json=body)

    def change_asset(self, asset_id: str) -> dict:
        return self.admin("PUT", f"/assets/{asset_id}/content", json={})

    def rename_asset(self, asset_id: str, name: str) -> dict:
        return self.admin("PATCH", f"/assets/{asset_id}", json={"name": name})

    def remove_asset(self, asset_id: str) -> dict:
        return self.admin("DELETE", f"/assets/{asset_id}")
