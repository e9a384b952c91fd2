"""`test_connection`: the connection form's Test button. One cheap authenticated call, a plain-words verdict.

The message a person reads never holds the key or token, says which API and connection failed, and a dead host
answers within seconds (the probe's own short retry budget, not the hook's five minutes).
"""

from __future__ import annotations

import time

from airflow.sdk import BaseHook, Connection

from cherry_sync.hooks.base import ApiHook
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer
from tests.hooks.conftest import cherry_hook, closed_port_url, crm_hook

WRONG_KEY = "ck_sandbox_wrongwrongwrongwrong"
WRONG_TOKEN = "pit-11111111-2222-4333-8444-555555555555"


def test_a_good_key_and_a_good_token_pass_with_one_call_each(cherry_sandbox, crm_sandbox):
    cherry, crm = cherry_hook(cherry_sandbox), crm_hook(crm_sandbox)
    assert cherry.test_connection() == (True, "Connection successfully tested")
    assert crm.test_connection() == (True, "Connection successfully tested")
    assert cherry.calls == {"GET /v1/practice": 1}
    assert crm.calls == {"GET /locations/{id}": 1}


def test_a_wrong_key_fails_in_plain_words_without_the_key(cherry_sandbox):
    ok, message = cherry_hook(cherry_sandbox, api_key=WRONG_KEY).test_connection()
    assert ok is False
    assert message.startswith("the Cherry API rejected the API key as invalid (HTTP 401")
    assert WRONG_KEY not in message and WRONG_KEY[-12:] not in message


def test_a_wrong_token_fails_in_plain_words_without_the_token(crm_sandbox):
    hook = crm_hook(crm_sandbox, token=WRONG_TOKEN)
    ok, message = hook.test_connection()
    assert ok is False
    assert message.startswith("the CRM (Aesthetix / HighLevel API) rejected the token as invalid (HTTP 401")
    assert WRONG_TOKEN not in message and WRONG_TOKEN[-12:] not in message
    assert hook.calls == {"GET /locations/{id}": 1}  # a 401 is not retried


def test_a_crm_connection_without_location_id_says_so(crm_sandbox):
    conn = Connection(conn_id="crm_x", conn_type="aesthetix_crm", host=crm_sandbox.base_url, password=WRONG_TOKEN)
    ok, message = AesthetixCrmHook("crm_x", connection=conn, pacer=MemoryPacer()).test_connection()
    assert ok is False and "location_id" in message
    assert crm_sandbox.stats()["total"] == 0  # nothing was sent


def test_a_dead_host_fails_within_seconds():
    hook = CherryHook(
        "cherry_dead",
        connection=Connection(conn_id="cherry_dead", conn_type="cherry", host=closed_port_url(), password=WRONG_KEY),
        pacer=MemoryPacer(),
    )
    started = time.monotonic()
    ok, message = hook.test_connection()
    assert ok is False and "could not be reached" in message and WRONG_KEY not in message
    assert time.monotonic() - started < 10
    assert hook.calls == {"GET /v1/practice": 2}  # the probe's two attempts, not the hook's eight


def test_the_hooks_are_airflow_hooks_without_an_unpaced_way_to_send():
    """The HTTP provider's `run` / `run_and_check` sent without pacing, timeouts or typed errors: not here."""
    for hook_class in (CherryHook, AesthetixCrmHook):
        assert issubclass(hook_class, BaseHook) and issubclass(hook_class, ApiHook)
        for name in ("run", "run_and_check", "run_with_advanced_retry", "check_response", "url_from_endpoint"):
            assert not hasattr(hook_class, name), f"{hook_class.__name__}.{name}"


def test_the_base_url_from_host_and_port(cherry_sandbox):
    """The port field joins a host without a port; a host with its own port keeps it; they may not disagree."""
    port = int(cherry_sandbox.base_url.rsplit(":", 1)[1])

    def hook(host: str, conn_port: int | None) -> CherryHook:
        conn = Connection(conn_id="c", conn_type="cherry", host=host, port=conn_port, password=WRONG_KEY)
        return CherryHook("c", connection=conn, pacer=MemoryPacer())

    assert hook("http://127.0.0.1", port).base_url == cherry_sandbox.base_url
    assert hook(cherry_sandbox.base_url, port).base_url == cherry_sandbox.base_url
    assert hook(cherry_sandbox.base_url + "/", None).base_url == cherry_sandbox.base_url
    assert hook("partner-api.withcherry.com", 443).base_url == "https://partner-api.withcherry.com:443"
    assert hook("http://127.0.0.1/api", port).base_url == f"http://127.0.0.1:{port}/api"
    good = CherryHook(
        "c",
        connection=Connection(
            conn_id="c",
            conn_type="cherry",
            host="http://127.0.0.1",
            port=port,
            password=cherry_sandbox.practices[0].api_key,
        ),
        pacer=MemoryPacer(),
    )
    assert good.get_practice()["id"] == cherry_sandbox.practices[0].id
    ok, message = hook(cherry_sandbox.base_url, port + 1).test_connection()
    assert ok is False and "different ports" in message
