"""Each CRM sandbox location has its own time zone, as in HighLevel, reported by `GET /locations/{locationId}`."""

from __future__ import annotations

import pytest
import requests

from sandbox.cherry.regions import REGIONS


def _location(crm, which) -> dict:
    response = crm.client(which).get(f"/locations/{crm.location(which).id}")
    assert response.status_code == 200, response.text
    return response.json()["location"]


def test_seeded_locations_take_the_cherry_sandbox_practice_zones_in_order(crm_sandbox):
    zones = [_location(crm_sandbox, i)["timezone"] for i in range(3)]

    assert zones == [region.timezone for region in REGIONS[:3]]
    assert zones == ["America/Los_Angeles", "America/New_York", "America/Chicago"]
    body = _location(crm_sandbox, 0)
    assert {"id", "companyId", "name", "timezone", "settings"} <= set(body)  # the spec's GetLocationByIdSchema


def test_zones_are_configurable_where_locations_are_created(crm_sandbox_factory):
    crm = crm_sandbox_factory(locations=3, location_timezones=["Europe/London", "Pacific/Honolulu"])
    assert [loc.timezone for loc in crm.locations] == ["Europe/London", "Pacific/Honolulu", "Europe/London"]

    added = crm.add_location(name="Added", timezone="America/Denver")
    assert added.timezone == "America/Denver" and _location(crm, added.id)["timezone"] == "America/Denver"

    row = crm.set_location_timezone(added.id, "America/Phoenix")
    assert row["timezone"] == "America/Phoenix" and _location(crm, added.id)["timezone"] == "America/Phoenix"


def test_an_unknown_zone_is_refused(crm_sandbox):
    with pytest.raises(requests.HTTPError) as refused:
        crm_sandbox.set_location_timezone(crm_sandbox.location(0).id, "Mars/Olympus_Mons")
    assert refused.value.response.status_code == 422
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        from sandbox.crm.config import CrmSandboxConfig

        CrmSandboxConfig(location_timezones=["Mars/Olympus_Mons"])
