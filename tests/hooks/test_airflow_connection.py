"""The hooks resolve their connection the normal Airflow way (AIRFLOW_CONN_<ID> as JSON), outside a task."""

from __future__ import annotations

import json

from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer
from tests.hooks.conftest import FAST


def test_connection_from_an_airflow_env_var(crm_sandbox, monkeypatch):
    loc = crm_sandbox.location(0)
    conn = {
        "conn_type": "http",
        "host": crm_sandbox.base_url,
        "password": loc.token,
        "extra": {"location_id": loc.id, "burst_limit": 50, "read_timeout": 2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AESTHETIX_CRM_ENVTEST", json.dumps(conn))
    hook = AesthetixCrmHook("aesthetix_crm_envtest", pacer=MemoryPacer(), retry=FAST)
    assert hook.connection.password == loc.token
    assert hook.location_id == loc.id
    assert hook.pace_settings.max_requests == 50
    assert hook.retry_settings.read_timeout == 2.0  # extras override the given settings
    assert hook.test_connection() == (True, "Connection successfully tested")
    contact, created = hook.upsert_contact({"email": "env.conn@example.org"})
    assert created and hook.get_contact(contact["id"])["email"] == "env.conn@example.org"
    assert "Version" in hook.get_conn().headers and "location_id" not in hook.get_conn().headers
