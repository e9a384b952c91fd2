"""The practice registry: valid file, each kind of bad entry, fatal file errors, env override."""

from __future__ import annotations

import textwrap
import traceback
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cherry_sync.context import REGISTRY_ENV_VAR as ENV_VAR
from cherry_sync.context import REGISTRY_PATH as DEFAULT_PATH
from cherry_sync.domain.cherry_records import parse_patient
from cherry_sync.domain.contact_points import normalise_email
from cherry_sync.domain.errors import RecordRejected
from cherry_sync.reasons import ReasonCode
from cherry_sync.registry import (
    PracticeConfig,
    RegistryFileError,
    load_registry,
    main,
)
from tests.domain import samples as domain_samples

GOOD = """
- slug: glow-aesthetics
  display_name: Glow Aesthetics
  timezone: America/New_York
  cherry_conn_id: cherry_glow_aesthetics
  crm_conn_id: crm_glow_aesthetics
  options:
    patient_estimates: true
    opportunity: {pipeline: Cherry Financing, stage: Funded}
    report_recipients: [owner@glow.example]
- slug: lumen-medspa
  display_name: Lumen MedSpa
  timezone: America/Chicago
  cherry_conn_id: cherry_lumen_medspa
  crm_conn_id: crm_lumen_medspa
  enabled: false
"""


def practice(slug: str, *, extra: str = "", **fields: str) -> str:
    """One YAML entry; `fields` override the basics, `extra` adds indented lines (options...)."""
    base = {
        "slug": slug,
        "display_name": slug.title(),
        "timezone": "Europe/London",
        "cherry_conn_id": f"cherry_{slug.replace('-', '_')}",
        "crm_conn_id": f"crm_{slug.replace('-', '_')}",
    } | fields
    lines = [f"- slug: {base.pop('slug')}"] + [f"  {key}: {value}" for key, value in base.items()]
    return "\n".join(lines) + ("\n" + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") if extra else "") + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "practices.yml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str):
    return load_registry(write(tmp_path, text))


def only_error(registry):
    assert len(registry.errors) == 1, registry.errors
    return registry.errors[0]


def test_valid_file_with_defaults(tmp_path):
    registry = load(tmp_path, GOOD)

    assert registry.errors == ()
    assert [p.slug for p in registry.practices] == ["glow-aesthetics", "lumen-medspa"]
    glow = registry.get("glow-aesthetics")
    assert glow.options.patient_estimates is True
    assert glow.options.opportunity.pipeline == "Cherry Financing"
    lumen = registry.get("lumen-medspa")
    assert lumen.options.estimate_amounts == (Decimal("1000.00"), Decimal("2500.00"), Decimal("5000.00"))
    assert lumen.options.opportunity is None
    assert lumen.options.report_recipients == ()
    assert lumen.options.segments.balance_threshold == Decimal("5000")
    tags = lumen.options.segments.tags
    assert (tags.all, tags.active, tags.inactive, tags.balance_over_threshold, tags.increase_eligible) == (
        "cherry-patient",
        "cherry-active",
        "cherry-inactive",
        "cherry-balance-5k-plus",
        "cherry-increase-eligible",
    )
    assert registry.get("missing") is None


def test_disabled_practice_is_valid_but_not_enabled(tmp_path):
    registry = load(tmp_path, GOOD)

    assert [p.slug for p in registry.enabled()] == ["glow-aesthetics"]
    assert registry.get("lumen-medspa").enabled is False


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        (practice("glow", timezone="Mars/Olympus_Mons"), "timezone", "unknown IANA timezone"),
        (
            practice("glow", extra="options:\n  report_recipients: [not-an-email]"),
            "options.report_recipients.0",
            "email",
        ),
        (practice("glow", extra="options:\n  patient_estimate: true"), "options.patient_estimate", "unknown setting"),
        (practice("glow", colour="red"), "colour", "unknown setting"),
        (
            practice("glow", extra="options:\n  estimate_amounts: [1000, -5]"),
            "options.estimate_amounts.1",
            "greater than 0",
        ),
        (practice("glow", extra="options:\n  estimate_amounts: []"), "options.estimate_amounts", "at least 1"),
        (practice("glow", extra="options:\n  opportunity: {pipeline: Sales}"), "options.opportunity.stage", "required"),
        (practice("glow", enabled="maybe"), "enabled", "boolean"),
        (practice("glow", crm_conn_id="'crm glow'"), "crm_conn_id", "connection id"),
        (
            practice("glow", extra="options:\n  segments:\n    tags: {active: 'Cherry-Active'}"),
            "options.segments.tags.active",
            "lowercase",
        ),
        (
            practice("glow", extra="options:\n  segments:\n    tags: {active: 'a,b'}"),
            "options.segments.tags.active",
            "comma",
        ),
        (
            practice("glow", extra="options:\n  segments:\n    tags: {active: cherry-patient}"),
            "options.segments.tags",
            "own tag",
        ),
        (
            practice("glow", extra="options:\n  segments:\n    balance_threshold: lots"),
            "options.segments.balance_threshold",
            "decimal",
        ),
    ],
)
def test_bad_entry_names_practice_and_field_and_others_keep_working(tmp_path, entry, field, message):
    registry = load(tmp_path, practice("harbor-dermatology") + entry + practice("lumen-medspa"))

    error = only_error(registry)
    assert (error.practice, error.field) == ("glow", field)
    assert message.lower() in error.message.lower()
    assert [p.slug for p in registry.practices] == ["harbor-dermatology", "lumen-medspa"]


def test_bad_slug_is_named_by_entry_number(tmp_path):
    registry = load(tmp_path, practice("harbor") + practice("Glow_Aesthetics"))

    error = only_error(registry)
    assert (error.practice, error.field) == ("entry #2", "slug")
    assert [p.slug for p in registry.practices] == ["harbor"]


def test_missing_fields_are_each_reported(tmp_path):
    registry = load(tmp_path, "- slug: glow\n  display_name: Glow\n")

    assert {(e.practice, e.field) for e in registry.errors} == {
        ("glow", "timezone"),
        ("glow", "cherry_conn_id"),
        ("glow", "crm_conn_id"),
    }


def test_entry_that_is_not_a_mapping(tmp_path):
    registry = load(tmp_path, practice("glow") + "- just a string\n")

    error = only_error(registry)
    assert error.practice == "entry #2"
    assert [p.slug for p in registry.practices] == ["glow"]


def test_duplicate_slug_rejects_the_later_entries(tmp_path):
    registry = load(
        tmp_path,
        practice("glow", display_name="First")
        + practice("glow", display_name="Second")
        + practice("lumen")
        + practice("glow", display_name="Third"),
    )

    assert [(e.practice, e.field) for e in registry.errors] == [("glow", "slug"), ("glow", "slug")]
    assert "entry #1" in registry.errors[0].message
    assert [(p.slug, p.display_name) for p in registry.practices] == [("glow", "First"), ("lumen", "Lumen")]


def test_errors_do_not_echo_values(tmp_path):
    registry = load(tmp_path, practice("glow", extra="options:\n  report_recipients: ['jane.doe@@example.com']"))

    assert "jane.doe" not in str(only_error(registry))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- slug: glow\n  display_name: [unclosed\n", "not valid YAML"),
        ("slug: glow\n", "must be a YAML list"),
        ("", "empty file"),
        ("just text", "must be a YAML list"),
    ],
)
def test_unusable_file_is_fatal(tmp_path, text, message):
    with pytest.raises(RegistryFileError, match=message):
        load(tmp_path, text)


def test_missing_file_is_fatal(tmp_path):
    with pytest.raises(RegistryFileError, match="not found"):
        load_registry(tmp_path / "nope.yml")


def test_empty_list_is_an_empty_registry(tmp_path):
    registry = load(tmp_path, "[]\n")

    assert registry.practices == () and registry.errors == ()


def test_env_var_overrides_the_default_path(tmp_path, monkeypatch):
    path = write(tmp_path, practice("from-env"))
    monkeypatch.setenv(ENV_VAR, str(path))

    assert [p.slug for p in load_registry().practices] == ["from-env"]


def test_default_path_is_the_repository_registry(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)

    registry = load_registry()

    assert registry.path == DEFAULT_PATH
    assert Path(__file__).resolve().parents[2] / "include" / "practices.yml" == DEFAULT_PATH


def test_shipped_registry_is_valid_and_matches_the_sandboxes():
    registry = load_registry(DEFAULT_PATH)

    assert registry.errors == ()
    assert [p.slug for p in registry.practices] == ["glow-aesthetics", "lumen-medspa", "harbor-dermatology"]
    for config in registry.practices:
        underscored = config.slug.replace("-", "_")
        assert (config.cherry_conn_id, config.crm_conn_id) == (f"cherry_{underscored}", f"crm_{underscored}")


def test_fingerprint_is_stable_and_tracks_changes(tmp_path):
    first = load(tmp_path, practice("glow", extra="options:\n  estimate_amounts: [1000, 2500.0]"))
    same = load(tmp_path, practice("glow", extra="options:\n  estimate_amounts: ['1000.00', 2500]"))
    changed = load(tmp_path, practice("glow", extra="options:\n  estimate_amounts: [1000, 2600]"))

    assert first.fingerprint("glow") == same.fingerprint("glow")
    assert first.fingerprint("glow") != changed.fingerprint("glow")
    with pytest.raises(KeyError):
        first.fingerprint("missing")


def test_check_command(tmp_path, capsys):
    assert main([str(write(tmp_path, GOOD))]) == 0
    assert main([str(write(tmp_path, practice("glow", timezone="Nowhere/City")))]) == 1
    assert "glow: timezone: unknown IANA timezone" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.yml")]) == 2


# -- time zones: the pin option and `--zones` ------------------------------------------------------------------


def test_timezone_pinned_is_a_strict_boolean_that_defaults_to_false(tmp_path):
    registry = load(tmp_path, practice("glow") + practice("lumen", timezone_pinned="true"))
    assert registry.get("glow").timezone_pinned is False and registry.get("lumen").timezone_pinned is True

    bad = load(tmp_path, practice("glow", timezone_pinned="'yes'"))
    assert [(e.practice, e.field) for e in bad.errors] == [("glow", "timezone_pinned")]


def test_an_unpinned_entry_keeps_its_fingerprint_and_pinning_changes_it(tmp_path):
    plain = load(tmp_path, practice("glow")).fingerprint("glow")
    explicit = load(tmp_path, practice("glow", timezone_pinned="false")).fingerprint("glow")
    pinned = load(tmp_path, practice("glow", timezone_pinned="true")).fingerprint("glow")
    assert plain == explicit != pinned


def test_check_command_with_zones_asks_cherry_and_the_crm(tmp_path, capsys, monkeypatch, cherry_sandbox, crm_sandbox):
    import json

    entries = []
    for index, slug in enumerate(("glow", "lumen", "harbor")):
        info, location = cherry_sandbox.practices[index], crm_sandbox.location(index)
        cherry_conn = {"conn_type": "http", "host": cherry_sandbox.base_url, "password": info.api_key}
        crm_conn = {
            "conn_type": "http",
            "host": crm_sandbox.base_url,
            "password": location.token,
            "extra": {"location_id": location.id},
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_CHERRY_{slug.upper()}", json.dumps(cherry_conn))
        monkeypatch.setenv(f"AIRFLOW_CONN_CRM_{slug.upper()}", json.dumps(crm_conn))
        zone = info.timezone if slug != "lumen" else "America/Denver"  # lumen's registry entry disagrees
        entries.append(practice(slug, timezone=zone, timezone_pinned="true" if slug == "harbor" else "false"))
    crm_sandbox.set_location_timezone(crm_sandbox.location(2).id, "America/Phoenix")  # harbor: pinned anyway
    path = write(tmp_path, "".join(entries))

    assert main([str(path)]) == 0  # without --zones no API is asked
    capsys.readouterr()
    assert main([str(path), "--zones"]) == 1

    lines = capsys.readouterr().out.splitlines()
    assert f"zones  glow: time zones agree ({cherry_sandbox.practices[0].timezone})" in lines
    lumen = next(line for line in lines if line.startswith("error  lumen: "))
    assert lumen == (
        "error  lumen: time zones disagree: the registry says America/Denver, Cherry keeps the practice in "
        "America/New_York and the CRM location is in America/New_York; set the registry's timezone to "
        "America/New_York, or pin the registry's zone with `timezone_pinned: true`"
    )
    harbor = next(line for line in lines if line.startswith("zones  harbor: "))
    assert "America/Phoenix" in harbor and "pinned, syncing in America/Chicago" in harbor


# -- the contract's shared types: e-mail, money, time zone ------------------------------------------------------


def test_recipients_are_read_like_patient_emails(tmp_path):
    registry = load(tmp_path, practice("glow", extra="options:\n  report_recipients: [' Owner@Glow.EXAMPLE ']"))
    assert registry.get("glow").options.report_recipients == (normalise_email(" Owner@Glow.EXAMPLE "),)
    assert registry.get("glow").options.report_recipients == ("Owner@glow.example",)

    # A special-use domain can never receive mail: refused here as it is dropped from a patient.
    bad = load(tmp_path, practice("glow", extra="options:\n  report_recipients: [owner@glow.test]"))
    assert [(e.field, e.message) for e in bad.errors] == [("options.report_recipients.0", "not a valid email address")]
    patient = parse_patient(domain_samples.patient(email="owner@glow.test"))
    assert [(w.reason_code, w.field) for w in patient.warnings] == [(ReasonCode.INVALID_EMAIL, "email")]


@pytest.mark.parametrize("amount", ["'1.005'", "'1e3'", "'$1000'", "true"])
def test_amounts_follow_the_contract_money_rule(tmp_path, amount):
    registry = load(tmp_path, practice("glow", extra=f"options:\n  estimate_amounts: [1000, {amount}]"))

    error = only_error(registry)
    assert error.field == "options.estimate_amounts.1" and "at most 2 places" in error.message
    with pytest.raises(RecordRejected) as caught:
        parse_patient(domain_samples.patient(balance_available=yaml.safe_load(amount)))
    assert caught.value.reason_code is ReasonCode.INVALID_MONEY


def test_a_timezone_that_is_not_text_is_refused(tmp_path):
    error = only_error(load(tmp_path, practice("glow", timezone="7")))

    assert (error.field, error.message) == ("timezone", "expected an IANA timezone name (e.g. America/New_York)")


def test_a_validation_error_raised_by_the_model_itself_hides_the_input():
    entry = {
        "slug": "glow",
        "display_name": "Glow",
        "timezone": "UTC",
        "cherry_conn_id": "cherry_glow",
        "crm_conn_id": "crm_glow",
        "options": {"report_recipients": ["jane.doe.secret@@example.com"]},
    }
    with pytest.raises(ValidationError) as caught:
        PracticeConfig.model_validate(entry)

    assert "jane.doe.secret" not in f"{caught.value} {caught.value!r}"
    assert "jane.doe.secret" not in "".join(traceback.format_exception(caught.value))
