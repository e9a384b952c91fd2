"""Reading the registry file fast: libyaml, one parse per content of the file, the same errors as before; and the
parse-time view of it that `cherry_refresh`'s event Assets use (`watched_practices`) against full validation."""

from __future__ import annotations

import os

import pytest
import yaml

from cherry_sync.registry import load_registry
from cherry_sync.registry_file import RegistryFileError, read_entries
from cherry_sync.triggers.schedule import WatchedPractice, watched_practices
from tests.webhooks.conftest import registry_entry


def test_libyaml_reads_what_the_pure_python_parser_reads(tmp_path):
    entries = [registry_entry(f"p-{i}", webhooks=i % 2 == 0, poll_seconds=5 + i) for i in range(50)]
    entries[3]["display_name"] = 'Zoë\'s Clinic: "north" #2'
    path = tmp_path / "practices.yml"
    path.write_text(yaml.safe_dump(entries, allow_unicode=True))
    assert yaml.__with_libyaml__, "PyYAML without libyaml: the registry is read with the slow parser"
    assert read_entries(path) == yaml.safe_load(path.read_text())


def test_an_unchanged_file_is_parsed_once_and_any_edit_is_seen(tmp_path):
    path = tmp_path / "practices.yml"
    path.write_text(yaml.safe_dump([registry_entry("glow")]))
    first = read_entries(path)
    assert read_entries(path) is first  # same content: the parse is reused
    stat = path.stat()
    # Same size and the same mtime (an edit inside one timestamp tick): still seen, the content decides.
    path.write_text(path.read_text().replace("webhooks: true", "webhooks: fals"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert read_entries(path)[0]["events"]["webhooks"] == "fals"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- slug: [unclosed", "not valid YAML at line 1, column 18"),
        ("slug: glow\n", "must be a YAML list of practices, found a dict"),
        ("", "found an empty file"),
    ],
)
def test_an_unusable_file_is_reported_as_before(tmp_path, text, message):
    path = tmp_path / "practices.yml"
    path.write_text(text)
    with pytest.raises(RegistryFileError, match=message):
        read_entries(path)
    with pytest.raises(RegistryFileError, match=message):
        load_registry(path)
    with pytest.raises(RegistryFileError, match="not found"):
        read_entries(tmp_path / "missing.yml")


def test_watched_practices_are_the_enabled_valid_practices_event_settings(tmp_path):
    entries = [
        registry_entry("glow"),
        registry_entry("lumen", webhooks=False, poll_seconds=20),
        registry_entry("harbor", webhooks=False),
        {**registry_entry("off", webhooks=False), "enabled": False},
        {**registry_entry("Bad Slug"), "slug": "Bad Slug"},
        registry_entry("glow", webhooks=False),  # a second entry for a slug
        registry_entry("fast", webhooks=False, poll_seconds=2),  # below the 5 s minimum
        registry_entry("typo", webhooks=False, pol_seconds=30),  # misspelt setting
        {**registry_entry("noconn"), "cherry_conn_id": "bad id!"},
        {**registry_entry("maybe"), "enabled": "yes"},
        registry_entry("spelt", webhooks=False, poll_seconds="30"),  # a number as text: read as 30
        registry_entry("half", webhooks=False, poll_seconds=15.5),
        "not a mapping",
    ]
    path = tmp_path / "practices.yml"
    path.write_text(yaml.safe_dump(entries))
    watched = watched_practices(read_entries(path))
    assert watched == [
        WatchedPractice("glow", "cherry_glow", True, 15),
        WatchedPractice("lumen", "cherry_lumen", False, 20),
        WatchedPractice("harbor", "cherry_harbor", False, 15),
        WatchedPractice("spelt", "cherry_spelt", False, 30),
    ]
    # The same practices and settings as full validation finds (every field an Asset needs agrees).
    valid = [
        WatchedPractice(p.slug, p.cherry_conn_id, p.events.webhooks, p.events.poll_seconds)
        for p in load_registry(path).enabled()
    ]
    assert watched == valid


def test_an_entry_wrong_elsewhere_keeps_its_watcher(tmp_path):
    # Only the fields an Asset needs are checked at parse time; the run skips the entry and load_registry says why.
    entry = {**registry_entry("glow", webhooks=False), "timezone": "Mars/Olympus"}
    path = tmp_path / "practices.yml"
    path.write_text(yaml.safe_dump([entry]))
    assert [p.slug for p in watched_practices(read_entries(path))] == ["glow"]
    registry = load_registry(path)
    assert registry.enabled() == [] and [e.field for e in registry.errors] == ["timezone"]
