"""Sandbox admin: seeded locations and tokens, adding locations, state inspection, reset, CLI config."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.crm.cli import add_arguments, config_from_args, main
from sandbox.crm.config import CrmSandboxConfig
from sandbox.crm.state import CrmState


def test_seeded_locations_are_deterministic(crm_sandbox):
    listed = requests.get(crm_sandbox.url("/_sandbox/locations"), timeout=5).json()["locations"]
    assert len(listed) == 3
    for row in listed:
        assert re.fullmatch(r"[A-Za-z0-9]{20}", row["id"])
        assert re.fullmatch(r"pit-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", row["token"])
    again = CrmState(CrmSandboxConfig(locations=3))
    assert [(loc.id, loc.token) for loc in again.locations.values()] == [(r["id"], r["token"]) for r in listed]
    other_seed = CrmState(CrmSandboxConfig(locations=3, seed=7))
    assert {loc.id for loc in other_seed.locations.values()}.isdisjoint(r["id"] for r in listed)


def test_add_location(crm_sandbox):
    added = crm_sandbox.add_location(id="practiceBoston000001", name="Boston")
    assert added.token.startswith("pit-")
    r = crm_sandbox.client(added.id).get(f"/locations/{added.id}")
    assert r.status_code == 200 and r.json()["location"]["name"] == "Boston"
    chosen = crm_sandbox.add_location(token="pit-my-own-token")
    assert crm_sandbox.client(chosen.id).get(f"/locations/{chosen.id}").status_code == 200
    clash = requests.post(crm_sandbox.url("/_sandbox/locations"), json={"id": added.id}, timeout=5)
    assert clash.status_code == 409


def test_state_inspection_and_isolation(crm_sandbox):
    loc0, loc1 = crm_sandbox.location(0).id, crm_sandbox.location(1).id
    a, b = crm_sandbox.client(0), crm_sandbox.client(1)
    a.post("/contacts/upsert", json={"locationId": loc0, "email": "same@example.com", "firstName": "A"})
    r = b.post("/contacts/upsert", json={"locationId": loc1, "email": "same@example.com", "firstName": "B"})
    assert r.json()["new"] is True  # the same email is a different contact in another location
    a.post(f"/locations/{loc0}/customFields", json={"name": "Cherry Status", "dataType": "TEXT"})

    state0 = crm_sandbox.location_state(loc0)
    assert state0["counts"] == {
        "contacts": 1,
        "customFields": 1,
        "pipelines": 1,
        "opportunities": 0,
        "media": 0,
        "messages": 0,
    }
    assert [c["firstName"] for c in state0["contacts"]] == ["A"]
    state1 = crm_sandbox.location_state(loc1, lists=False)
    assert state1["counts"]["contacts"] == 1 and state1["counts"]["customFields"] == 0
    assert "contacts" not in state1
    assert [c["firstName"] for c in crm_sandbox.location_state(crm_sandbox.location(2).id)["contacts"]] == []


def test_reset(crm_sandbox):
    loc = crm_sandbox.location(0).id
    crm_sandbox.client(0).post("/contacts/upsert", json={"locationId": loc, "email": "r@example.com"})
    crm_sandbox.add_location(name="Temporary")
    crm_sandbox.set_faults(latency_ms=10)
    crm_sandbox.reset()
    assert len(crm_sandbox.locations) == 3
    assert crm_sandbox.location_state(loc)["counts"]["contacts"] == 0
    assert requests.get(crm_sandbox.url("/_sandbox/faults"), timeout=5).json()["latency_ms"] == 0
    assert crm_sandbox.stats()["total"] == 0


def test_in_process_state_is_reachable(crm_sandbox):
    loc = crm_sandbox.location(0).id
    crm_sandbox.client(0).post("/contacts/upsert", json={"locationId": loc, "email": "p@example.com"})
    assert len(crm_sandbox.app.state.crm.locations[loc].contacts.contacts) == 1


def test_cli_arguments_with_a_prefix():
    parser = argparse.ArgumentParser()
    add_arguments(parser, prefix="crm-")
    args = parser.parse_args(
        ["--crm-seed", "5", "--crm-locations", "10", "--crm-burst-limit", "5", "--crm-burst-window", "1"]
        + ["--crm-search-lag", "2.5", "--crm-port", "0"]
    )
    config = config_from_args(args, prefix="crm-")
    assert config.seed == 5 and config.locations == 10 and config.port == 0
    assert config.rate_limits.burst_limit == 5 and config.rate_limits.burst_window_seconds == 1
    assert config.rate_limits.daily_limit == 200_000 and config.rate_limits.enabled
    assert config.search_lag_seconds == 2.5

    plain = argparse.ArgumentParser()
    add_arguments(plain, prefix="")
    assert config_from_args(plain.parse_args(["--no-rate-limit"]), prefix="").rate_limits.enabled is False


def test_command_line_prints_url_and_tokens_and_serves():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.crm", "--port", "0", "--locations", "2", "--seed", "3"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)
        rows = [proc.stdout.readline().split() for _ in range(3)][1:]
        location_id, token = rows[0][0], rows[0][1]
        r = requests.get(
            f"{base_url}/locations/{location_id}",
            headers={"Authorization": f"Bearer {token}", "Version": "2021-07-28"},
            timeout=5,
        )
        assert r.status_code == 200
        assert len(rows) == 2 and all(row[1].startswith("pit-") for row in rows)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_command_line_refuses_non_loopback_hosts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "10.0.0.1", "--port", "0"])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err
