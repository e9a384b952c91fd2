"""`pip install` of the project gives a working cherry_sync: from the wheel alone, away from the repository.

The wheel is built and installed into a fresh venv (installed.py). From there, with no PYTHONPATH and no plugins
folder: the package imports from the venv, Airflow's ProvidersManager discovers the provider through the entry
point (both connection types, their hooks, form fields and field behaviour), the email templates and the store's
migrations are package data that work from the installed copy.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from tests.deploy.installed import InstalledProject, install_project

PROBE = r"""
import json, sqlalchemy
from importlib import resources
import cherry_sync
from airflow.providers_manager import ProvidersManager
from cherry_sync.reports.render import template_environment
from cherry_sync.store.migrate import current_revision, head_revision, migrate

pm = ProvidersManager()
hooks = {t: pm.hooks[t] for t in ("cherry", "aesthetix_crm")}
engine = sqlalchemy.create_engine("sqlite:///store.db")
migrate(engine)
env = template_environment()
print(json.dumps({
    "package": cherry_sync.__file__,
    "template": str(resources.files("cherry_sync").joinpath("templates", "metrics_email.html.j2")),
    "templates": sorted(env.get_template(n).name for n in (
        "metrics_email.html.j2", "metrics_email.txt.j2", "failure_email.html.j2", "failure_email.txt.j2")),
    "provider_version": pm.providers["cherry-sync"].version,
    "hooks": {t: [h.hook_class_name, h.hook_name, h.connection_testable, h.package_name] for t, h in hooks.items()},
    "widgets": sorted(k for k in pm.connection_form_widgets if k.startswith(("extra__cherry__", "extra__aesthetix_crm__"))),
    "behaviour": {t: pm.field_behaviours[t] for t in hooks},
    "store_at_head": current_revision(engine) == head_revision(),
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> InstalledProject:
    return install_project(tmp_path_factory.mktemp("installed-package"))


def test_the_wheel_holds_the_package_its_data_and_the_entry_point(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    for expected in (
        "cherry_sync/provider.py",
        "cherry_sync/hooks/base.py",
        "cherry_sync/templates/metrics_email.html.j2",
        "cherry_sync/templates/failure_email.txt.j2",
        "cherry_sync/store/migrations/env.py",
        "cherry_sync/store/migrations/script.py.mako",
        "cherry_sync/store/migrations/versions/0001_initial_schema.py",
    ):
        assert expected in names, f"{expected} is not in the wheel"
    assert not [n for n in names if n.startswith(("tests/", "sandbox/", "dags/")) or "__pycache__" in n]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "[apache_airflow_provider]" in zipfile.ZipFile(installed.wheel).read(entry_points).decode()


def test_the_installed_package_works_without_the_repository(installed, tmp_path):
    result = installed.run(PROBE, cwd=tmp_path, AIRFLOW_HOME=str(tmp_path / "airflow"))
    assert result.returncode == 0, result.stderr[-4000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    site = str(installed.site_packages)
    assert seen["package"].startswith(site), f"cherry_sync imported from {seen['package']}, not the install"
    assert seen["template"].startswith(site) and len(seen["templates"]) == 4
    assert seen["store_at_head"] is True
    assert seen["provider_version"] == "0.1.0"
    assert seen["hooks"] == {
        "cherry": ["cherry_sync.hooks.cherry.CherryHook", "Cherry partner API", True, "cherry-sync"],
        "aesthetix_crm": [
            "cherry_sync.hooks.crm.AesthetixCrmHook",
            "Aesthetix CRM (HighLevel v2)",
            True,
            "cherry-sync",
        ],
    }
    assert "extra__aesthetix_crm__location_id" in seen["widgets"] and "extra__cherry__burst_limit" in seen["widgets"]
    crm = seen["behaviour"]["aesthetix_crm"]
    assert crm["relabeling"] == {"host": "API base URL", "password": "Private Integration Token"}
    assert {"schema", "login"} <= set(crm["hidden_fields"])
    assert seen["behaviour"]["cherry"]["relabeling"]["password"] == "API key"
