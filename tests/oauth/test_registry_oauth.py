"""Registry: `crm_auth: oauth` entries name a location and no CRM connection; pit entries keep their fingerprints."""

from __future__ import annotations

import pytest

from cherry_sync.context import OAUTH_APP_CONN_ID
from cherry_sync.registry import parse_entries

BASE = {"slug": "glow", "display_name": "Glow", "timezone": "America/Chicago", "cherry_conn_id": "cherry_glow"}
# The fingerprint of this pit entry before crm_auth existed (the store's practices mirror keeps it).
PIT_FINGERPRINT = "6de3c4adb6fbd247bd978f841c294d6f6424ba023b325dab06f4078700153fda"


def errors_of(entry: dict) -> set[tuple[str, str]]:
    return {(e.field, e.message) for e in parse_entries([entry]).errors}


def test_pit_entry_fingerprint_is_unchanged():
    (practice,) = parse_entries([{**BASE, "crm_conn_id": "crm_glow"}]).practices
    assert practice.crm_auth == "pit" and practice.crm_connection_id == "crm_glow"
    assert practice.fingerprint() == PIT_FINGERPRINT
    (explicit,) = parse_entries([{**BASE, "crm_auth": "pit", "crm_conn_id": "crm_glow"}]).practices
    assert explicit.fingerprint() == PIT_FINGERPRINT


def test_oauth_entry_names_a_location_and_uses_the_app_connection():
    (practice,) = parse_entries([{**BASE, "crm_auth": "oauth", "crm_location_id": "loc_AbC123"}]).practices
    assert practice.crm_conn_id is None and practice.crm_location_id == "loc_AbC123"
    assert practice.crm_connection_id == OAUTH_APP_CONN_ID
    other = parse_entries([{**BASE, "crm_auth": "oauth", "crm_location_id": "loc_Other"}]).practices[0]
    assert other.fingerprint() != practice.fingerprint()


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ({"crm_auth": "oauth"}, "crm_location_id", "required"),
        ({"crm_auth": "oauth", "crm_location_id": "loc1", "crm_conn_id": "crm_glow"}, "crm_conn_id", "no crm_conn_id"),
        ({"crm_conn_id": "crm_glow", "crm_location_id": "loc1"}, "crm_location_id", "only for crm_auth: oauth"),
        ({}, "crm_conn_id", "required"),
        ({"crm_auth": "oauth", "crm_location_id": "bad id!"}, "crm_location_id", "location id"),
        ({"crm_auth": "token", "crm_conn_id": "crm_glow"}, "crm_auth", "'pit' or 'oauth'"),
    ],
)
def test_wrong_crm_access_is_named_by_field(entry, field, words):
    found = errors_of({**BASE, **entry})
    assert [f for f, _ in found] == [field], found
    assert words.lower() in next(iter(found))[1].lower()
