"""The onboarding report against the real sandboxes: each practice's state, the app's installed locations matched
to the registry (OAuth by `crm_location_id`, PIT by its connection's `location_id`), no secret in its output."""

from __future__ import annotations

import io
import json

from cryptography.fernet import Fernet

from cherry_sync.onboarding import exchange_authorization_code, main, onboarding_report


def _mixed_registry(world):
    """glow: OAuth, ready; harbor: OAuth on a location without the app; lumen: PIT (the app installed there too);
    coast: OAuth, Cherry key not activated; location 4: the app installed, no entry."""
    world.app_connections()
    code = world.install(0, 2, 3, 4)
    exchange_authorization_code(code)
    world.practice("glow", 0, auth="oauth")
    world.practice("harbor", 1, auth="oauth")
    world.practice("lumen", 2, auth="pit")
    inactive_key = world.cherry.create_key(3, activated=False)
    world.practice("coast", 3, auth="oauth", api_key=inactive_key)
    return world.registry()


def test_the_report_states_each_practice_and_the_unclaimed_location(world):
    report = onboarding_report(_mixed_registry(world))

    rows = {row.slug: row for row in report.practices}
    assert (rows["glow"].auth, rows["glow"].location_id, rows["glow"].app_installed) == (
        "oauth",
        world.location(0),
        True,
    )
    assert rows["glow"].state == "ready" and rows["glow"].cherry == "active"
    assert rows["harbor"].app_installed is False and rows["harbor"].state == "app_not_installed"
    assert rows["harbor"].cherry == "active"
    assert (rows["lumen"].auth, rows["lumen"].location_id) == ("PIT", world.location(2))
    assert rows["lumen"].app_installed is True and rows["lumen"].state == "ready"
    assert rows["coast"].crm == "ok" and rows["coast"].state == "cherry_key_not_activated"
    assert report.installed_without_entry == (world.location(4),)
    assert set(report.installed_locations) == {world.location(i) for i in (0, 2, 3, 4)}
    assert report.ready == ("glow", "lumen")
    assert report.not_ready == ("harbor", "coast")
    assert report.app == "ok" and not report.ok

    xcom = report.as_dict()
    assert json.loads(json.dumps(xcom)) == xcom  # plain JSON: what XCom keeps
    assert xcom["installed_without_entry"] == [world.location(4)]
    assert {p["slug"]: p["state"] for p in xcom["practices"]} == {
        "glow": "ready",
        "harbor": "app_not_installed",
        "lumen": "ready",
        "coast": "cherry_key_not_activated",
    }

    table = report.table()
    lines = table.splitlines()
    assert lines[0].split() == ["practice", "auth", "location", "app", "cherry", "crm", "state"]
    assert any(line.split()[:2] == ["lumen", "PIT"] and line.split()[-1] == "ready" for line in lines)
    assert any(line.split()[:3] == ["-", "-", world.location(4)] and "no_registry_entry" in line for line in lines)
    assert "app_not_installed: install the marketplace app on this location" in table
    assert "cherry_key_not_activated: ask the practice to activate" in table

    # No credential of any kind in what is logged or returned: API keys, PIT, client secret, token key, tokens.
    text = table + json.dumps(xcom)
    secrets = world.secrets | _stored_tokens(world)
    assert secrets and not [s for s in secrets if s in text]


def _stored_tokens(world) -> set[str]:
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine, text

    engine = create_engine(world.store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT access_token, refresh_token FROM crm_oauth_tokens")).all()
    finally:
        engine.dispose()
    fernet = Fernet(world.token_key.encode())
    return {fernet.decrypt(v.encode()).decode() for row in rows for v in row if v}


def test_missing_app_connection_token_key_or_agency_token_is_reported_per_oauth_practice(world):
    world.practice("glow", 0, auth="oauth")
    world.practice("lumen", 2, auth="pit")
    registry = world.registry()

    report = onboarding_report(registry)  # no app connection at all
    assert report.app == "app_connection_missing"
    assert {r.slug: (r.state, r.app_installed) for r in report.practices} == {
        "glow": ("app_connection_missing", None),
        "lumen": ("ready", None),  # a PIT practice does not need the app
    }
    assert report.not_ready == ("glow",)

    world.app_connections()
    world.drop_conn("cherry_sync_token_key")
    assert onboarding_report(registry).app == "token_key_missing"

    world.app_connections()
    world.install(0)  # installed, but the code was never exchanged
    report = onboarding_report(registry)
    assert report.app == "no_agency_token" and report.not_ready == ("glow",)
    assert "run cherry_onboard with the authorization code" in report.table()

    exchange_authorization_code(world.install(0))
    assert onboarding_report(registry).ok

    # The key replaced by one that did not encrypt the stored pair, then by one that is no Fernet key at all.
    good_key = world.token_key
    world.set_conn("cherry_sync_token_key", {"conn_type": "generic", "password": Fernet.generate_key().decode()})
    assert onboarding_report(registry).app == "token_key_invalid"
    world.set_conn("cherry_sync_token_key", {"conn_type": "generic", "password": "not-a-fernet-key"})
    assert onboarding_report(registry).app == "token_key_invalid"
    world.set_conn("cherry_sync_token_key", {"conn_type": "generic", "password": good_key})

    world.crm.oauth_revoke()
    report = onboarding_report(registry)
    assert report.app == "app_revoked" and [r.state for r in report.practices] == ["app_revoked", "ready"]


def test_without_the_key_check_cherry_is_not_asked_but_a_missing_connection_still_counts(world):
    world.practice("glow", 0, auth="pit")
    world.practice("lumen", 1, auth="pit")
    registry = world.registry()
    world.drop_conn("cherry_lumen")
    before = world.cherry.stats()

    report = onboarding_report(registry, check_cherry_keys=False)

    assert [(r.slug, r.cherry, r.state) for r in report.practices] == [
        ("glow", "unchecked", "ready"),
        ("lumen", "cherry_connection_missing", "cherry_connection_missing"),
    ]
    assert report.app == "not_configured"  # PIT only, no app connection: the app is not asked
    assert world.cherry.stats() == before
    assert "Cherry keys: not checked" in report.table()


def test_an_invalid_entry_and_a_pit_connection_without_location_are_not_ready(world):
    world.practice("glow", 0, auth="pit")
    world.set_conn("crm_glow", {"conn_type": "http", "host": world.crm.base_url, "password": "pit-token-x"})
    world.entries.append({"slug": "broken", "display_name": "Broken", "timezone": "Nowhere/Else"})
    report = onboarding_report(world.registry(), check_cherry_keys=False)
    assert [(r.slug, r.state) for r in report.practices] == [("glow", "crm_location_missing")]
    assert report.invalid_entries == ("broken",) and not report.ok
    assert report.as_dict()["invalid_entries"] == ["broken"]


def test_every_page_of_installed_locations_is_read(
    cherry_sandbox_factory, crm_sandbox_factory, store_url, tmp_path, monkeypatch
):
    from tests.onboarding.conftest import OnboardWorld

    world = OnboardWorld(
        cherry=cherry_sandbox_factory(practices=1, patients_per_practice=1),
        crm=crm_sandbox_factory(locations=205),  # the app's client asks 100 a page: three pages
        store_url=store_url,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
    )
    world.app_connections()
    exchange_authorization_code(world.crm.oauth_install("all"))
    world.practice("last", 0, auth="oauth", crm_location_id=world.location(204))
    report = onboarding_report(world.registry(), check_cherry_keys=False)
    assert len(report.installed_locations) == 205
    assert [r.state for r in report.practices] == ["ready"]
    assert len(report.installed_without_entry) == 204
    assert world.crm.oauth_stats()["installed_locations_calls"] == 3


# -- the command line ---------------------------------------------------------------------------------------------


def test_the_command_prints_the_table_and_exits_non_zero_when_a_practice_is_not_ready(world, capsys, monkeypatch):
    path = _mixed_registry(world).path
    assert main(["--registry", str(path)]) == 1
    out = capsys.readouterr().out
    assert "harbor" in out and "app_not_installed" in out and world.location(4) in out
    assert not [s for s in world.secrets if s in out]

    world.entries[:] = [e for e in world.entries if e["slug"] in ("glow", "lumen")]
    assert main(["--registry", str(world.registry_path())]) == 0
    assert "ready: 2; not ready: 0" in capsys.readouterr().out


def test_the_command_exchanges_a_code_read_from_standard_input(world, capsys, monkeypatch):
    world.app_connections()
    world.practice("glow", 0, auth="oauth")
    path = world.registry_path()
    code = world.install(0)
    monkeypatch.setattr("sys.stdin", io.StringIO(code + "\n"))
    assert main(["--registry", str(path), "--exchange-code", "--no-cherry-check"]) == 0
    out = capsys.readouterr().out
    assert "agency token pair stored" in out and code not in out

    monkeypatch.setattr("sys.stdin", io.StringIO(code + "\n"))  # the same code again: refused, plainly
    assert main(["--registry", str(path), "--exchange-code"]) == 1
    captured = capsys.readouterr()
    assert "authorization code" in captured.err and "cherry_onboard" in captured.err and code not in captured.err
