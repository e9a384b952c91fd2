"""Cherry Sync as an Airflow provider: the connection types `cherry` and `aesthetix_crm` and their forms.

`get_provider_info` is the `apache_airflow_provider` entry point of the cherry-sync distribution (pyproject.toml).
Airflow's ProvidersManager calls it in every Airflow process that looks at providers, checks the dict against
`airflow/provider_info.schema.json` and that its `package-name` is the distribution's name, and from Airflow 3.2 on
builds the UI's connection form from `conn-fields` and `ui-field-behaviour` alone, without importing the hook
(the hooks' `get_connection_form_widgets` / `get_ui_field_behaviour` are its deprecated fallback). The form is
therefore declared here, as plain data with no imports, and the hooks read theirs from here
(`ApiHook.conn_fields`, `ApiHook.get_ui_field_behaviour`): one definition for the form and the hook.

Each field of `conn-fields` is stored as a top-level key of the connection's extra, the name the hooks read.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "cherry-sync"

CHERRY_CONN_TYPE = "cherry"
CHERRY_HOOK_NAME = "Cherry partner API"
CRM_CONN_TYPE = "aesthetix_crm"
CRM_HOOK_NAME = "Aesthetix CRM (HighLevel v2)"

# The host carries the scheme (and may carry the port); the key or token is the password. The port stays: Airflow
# 3.3's connection list tests a saved connection with port 0 when it has none, which its API takes for a changed
# endpoint and refuses ("Bad Request"), so a connection tested from the list needs its port (443 for https).
_HIDDEN = ["schema", "login"]

_RETRY_FIELDS: dict[str, dict] = {
    "read_timeout": {
        "label": "Read timeout (seconds)",
        "description": "How long to wait for an answer before retrying (default 30).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "max_attempts": {
        "label": "Max attempts",
        "description": "Attempts per request, retries of 429 / 5xx / timeouts included (default 8).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
}
_TLS_FIELDS: dict[str, dict] = {
    "verify": {
        "label": "TLS verify",
        "description": "A CA bundle path for a private certificate authority, or false to skip verification. "
        "A client certificate (cert) and proxies go in Extra.",
        "schema": {"type": ["string", "null"]},
    },
}


def _pacing_fields(default_limit: int, default_window: int, whose: str) -> dict[str, dict]:
    return {
        "burst_limit": {
            "label": "Burst limit",
            "description": f"Requests per burst window for {whose}, paced across all workers (default {default_limit}).",
            "schema": {"type": ["integer", "null"], "minimum": 1},
        },
        "burst_window_seconds": {
            "label": "Burst window (seconds)",
            "description": f"Length of the burst window (default {default_window}).",
            "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
    }


CHERRY_FIELDS: dict[str, dict] = {**_pacing_fields(18, 1, "this API key"), **_RETRY_FIELDS, **_TLS_FIELDS}
CHERRY_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": _HIDDEN,
    "relabeling": {"host": "API base URL", "password": "API key"},
    "placeholders": {
        "host": "https://partner-api.withcherry.com",
        "port": "443",
        "password": "the practice's Cherry API key",
        "extra": '{"proxies": {"https": "http://proxy.internal:3128"}}',
    },
}

CRM_FIELDS: dict[str, dict] = {
    "location_id": {
        "label": "Location id",
        "description": "The CRM location (sub-account) this token belongs to. Required.",
        "schema": {"type": ["string", "null"]},
    },
    **_pacing_fields(95, 10, "the location"),
    "daily_reserve": {
        "label": "Daily reserve",
        "description": "Requests kept back from the location's daily budget for other apps (default 0).",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "max_in_flight": {
        "label": "Max in flight",
        "description": "Most requests of one task in flight at once for this location (default 8).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    **_RETRY_FIELDS,
    **_TLS_FIELDS,
    # The marketplace app's connection (cherry_sync_highlevel_app) serves every practice on OAuth: its password is
    # the app's client secret, and it names the app and the agency instead of a location.
    "client_id": {
        "label": "OAuth client id",
        "description": "Marketplace app connection only: the app's client id (the password is its client secret).",
        "schema": {"type": ["string", "null"]},
    },
    "company_id": {
        "label": "OAuth company id",
        "description": "Marketplace app connection only: the agency (company) the app is installed for.",
        "schema": {"type": ["string", "null"]},
    },
    "app_id": {
        "label": "OAuth app id",
        "description": "Marketplace app connection only: the marketplace app's id.",
        "schema": {"type": ["string", "null"]},
    },
    "redirect_uri": {
        "label": "OAuth redirect URI",
        "description": "Marketplace app connection only, optional: the redirect URI the app is registered with.",
        "schema": {"type": ["string", "null"]},
    },
}
CRM_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": _HIDDEN,
    "relabeling": {"host": "API base URL", "password": "Private Integration Token"},
    "placeholders": {
        "host": "https://services.leadconnectorhq.com",
        "port": "443",
        "password": "pit-...",
        "location_id": "the location (sub-account) id",
    },
}


def _kebab(behaviour: dict[str, Any]) -> dict[str, Any]:
    """A hook's field behaviour (python keys) as provider info spells it ("hidden-fields", ...)."""
    return {key.replace("_", "-"): value for key, value in behaviour.items()}


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata for Airflow's ProvidersManager (see the module docstring)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Cherry Sync",
        "description": "Cherry (patient financing) to Aesthetix CRM (HighLevel API v2): hooks and connection types.",
        "connection-types": [
            {
                "connection-type": CHERRY_CONN_TYPE,
                "hook-class-name": "cherry_sync.hooks.cherry.CherryHook",
                "hook-name": CHERRY_HOOK_NAME,
                "ui-field-behaviour": _kebab(CHERRY_FIELD_BEHAVIOUR),
                "conn-fields": CHERRY_FIELDS,
            },
            {
                "connection-type": CRM_CONN_TYPE,
                "hook-class-name": "cherry_sync.hooks.crm.AesthetixCrmHook",
                "hook-name": CRM_HOOK_NAME,
                "ui-field-behaviour": _kebab(CRM_FIELD_BEHAVIOUR),
                "conn-fields": CRM_FIELDS,
            },
        ],
    }
