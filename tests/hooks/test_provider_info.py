"""The provider metadata Airflow reads from the `apache_airflow_provider` entry point.

Checked here the way ProvidersManager checks it (its own JSON schemas, the hook classes it imports); that Airflow
finds it through an installed distribution is checked in tests/deploy/test_package.py, and that the UI shows the
forms in tests/ui/test_connection_form.py.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import airflow
import jsonschema
import pytest
from airflow._shared.module_loading import import_string  # what ProvidersManager imports hooks with
from airflow.sdk import Connection

from cherry_sync import provider
from cherry_sync.hooks import errors
from cherry_sync.hooks.inflight import WriteWindow
from cherry_sync.hooks.oauth import OAuthApp
from tests.hooks.conftest import FAST, crm_hook

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = Path(airflow.__file__).parent


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def test_provider_info_passes_airflows_schema_and_names_the_distribution():
    info = provider.get_provider_info()
    jsonschema.validate(info, _schema("provider_info.schema.json"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert info["package-name"] == project["name"]
    entry = project["entry-points"]["apache_airflow_provider"]
    assert list(entry.values()) == ["cherry_sync.provider:get_provider_info"]


@pytest.mark.parametrize("conn_type", ["cherry", "aesthetix_crm"])
def test_each_connection_type_names_its_hook_and_its_form(conn_type):
    entry = next(c for c in provider.get_provider_info()["connection-types"] if c["connection-type"] == conn_type)
    hook = import_string(entry["hook-class-name"])
    assert (hook.conn_type, hook.hook_name) == (conn_type, entry["hook-name"])
    assert hook.conn_fields == entry["conn-fields"]
    behaviour = hook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, _schema("customized_form_field_behaviours.schema.json"))
    assert {k.replace("_", "-"): v for k, v in behaviour.items()} == entry["ui-field-behaviour"]
    assert behaviour["relabeling"]["host"] == "API base URL" and "password" in behaviour["relabeling"]
    assert {"schema", "login"} <= set(behaviour["hidden_fields"])
    for name, field in entry["conn-fields"].items():
        jsonschema.Draft7Validator.check_schema(field["schema"])
        assert field["label"] and field["description"], name


def test_every_form_field_sets_what_it_says(crm_sandbox):
    """A value typed in each form field (the form stores it as a string or a number) reaches the hook."""
    extra = {
        "location_id": crm_sandbox.location(0).id,
        "burst_limit": "40",
        "burst_window_seconds": 5,
        "daily_reserve": "7",
        "max_in_flight": 3,
        "read_timeout": "2.5",
        "max_attempts": 4,
        "verify": "false",
    }
    # The marketplace app's connection (crm_auth: oauth practices) has the same form; these fields are its own.
    app_extra = {"client_id": "client-1", "company_id": "agency-1", "app_id": "app-1", "redirect_uri": "https://x/cb"}
    assert set(extra) | set(app_extra) == set(provider.CRM_FIELDS) and set(provider.CHERRY_FIELDS) < set(extra)
    app = OAuthApp("app", connection=Connection(conn_id="app", conn_type="aesthetix_crm", extra=json.dumps(app_extra)))
    assert (app.client_id, app.company_id, app.app_id, app.redirect_uri) == tuple(app_extra.values())
    hook = crm_hook(crm_sandbox, **extra)
    assert hook.location_id == extra["location_id"]
    assert (hook.pace_settings.max_requests, hook.pace_settings.window_seconds) == (40, 5.0)
    assert (hook.retry_settings.read_timeout, hook.retry_settings.max_attempts) == (2.5, 4)
    assert hook.transport.verify is False and hook.get_conn().verify is False
    assert WriteWindow(hook).max_in_flight == 3
    hook.daily_remaining = 7  # the location's budget down to the reserve: no more requests
    with pytest.raises(errors.DailyBudgetExhaustedError):
        hook.list_pipelines()


def test_fields_left_empty_in_the_form_keep_the_defaults(crm_sandbox):
    hook = crm_hook(crm_sandbox, burst_limit=None, read_timeout="", verify=None, max_in_flight="")
    assert hook.pace_settings.max_requests == 95 and hook.retry_settings.read_timeout == FAST.read_timeout
    assert hook.transport.verify is True and WriteWindow(hook).max_in_flight == 8
    assert hook.list_pipelines()
