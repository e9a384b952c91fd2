"""OAuth test harness: the CRM sandbox's marketplace app, the app and token key connections, a `TokenService`.

Connections are `Connection` objects handed to the hooks (no Airflow lookup). `oauth_connections(crm)` builds the
app connection (host = the sandbox, login = client id, password = client secret, extras company_id, app_id,
redirect_uri, and the sandbox's time-scaled burst window) and a token key connection holding a fresh Fernet key.
`agency(crm, store)` is a connected `TokenService`: the app installed on every location and the code exchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from airflow.sdk import Connection
from cryptography.fernet import Fernet

from cherry_sync.context import OAUTH_APP_CONN_ID, TOKEN_KEY_CONN_ID
from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.oauth import TokenService
from cherry_sync.hooks.pacing import MemoryPacer, Pacer
from sandbox.crm.testing import CrmSandbox

FAST = RetrySettings(max_attempts=6, max_elapsed_seconds=30, backoff_initial=0.01, backoff_max=0.1, read_timeout=5)
CRM_LIMITS = {"burst_limit": 100, "burst_window_seconds": 1.0}  # the sandbox's, time-scaled (HighLevel: per 10 s)
HOOK_PACE = {"burst_limit": 95, "burst_window_seconds": 1}


@dataclass(frozen=True)
class OAuthConnections:
    app: Connection
    key: Connection
    app_info: dict[str, Any]

    @property
    def secrets(self) -> list[str]:
        """What must never show anywhere: the client secret and the token key."""
        return [self.app_info["client_secret"], self.key.password]

    def as_dicts(self) -> dict[str, dict]:
        """Both connections as plain data (for a spawned process)."""
        return {
            "app": {
                "conn_id": self.app.conn_id,
                "conn_type": self.app.conn_type,
                "host": self.app.host,
                "login": self.app.login,
                "password": self.app.password,
                "extra": self.app.extra,
            },
            "key": {"conn_id": self.key.conn_id, "conn_type": self.key.conn_type, "password": self.key.password},
        }


def oauth_connections(crm: CrmSandbox, key: str | None = None, **extra: Any) -> OAuthConnections:
    info = crm.oauth_app()
    app = Connection(
        conn_id=OAUTH_APP_CONN_ID,
        conn_type="aesthetix_crm",
        host=crm.base_url,
        login=info["client_id"],
        password=info["client_secret"],
        extra=json.dumps(
            {
                "company_id": info["company_id"],
                "app_id": info["app_id"],
                "redirect_uri": info["redirect_uri"],
                **HOOK_PACE,
                **extra,
            }
        ),
    )
    key_conn = Connection(
        conn_id=TOKEN_KEY_CONN_ID, conn_type="generic", password=key or Fernet.generate_key().decode()
    )
    return OAuthConnections(app, key_conn, info)


def token_service(conns: OAuthConnections, store, pacer: Pacer | None = None, **kwargs: Any) -> TokenService:
    return TokenService.from_connections(
        store,
        pacer=pacer or MemoryPacer(),
        retry=FAST,
        app_connection=conns.app,
        key_connection=conns.key,
        **kwargs,
    )


def connect_agency(crm: CrmSandbox, conns: OAuthConnections, store, locations: list[str] | str = "all") -> None:
    """Install the app for the agency (consent) and store the company pair from the code."""
    token_service(conns, store).connect(crm.oauth_install(locations))


@pytest.fixture
def oauth_crm(crm_sandbox_factory) -> CrmSandbox:
    return crm_sandbox_factory(rate_limits=CRM_LIMITS)
