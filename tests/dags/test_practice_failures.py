"""One practice failing must not stop the others: per-practice failures under `airflow dags test`.

Five practices run side by side (mapped tasks); four are broken, each in its own way:
- `bad-crm-token`: the CRM connection's token is wrong (401);
- `bad-cherry-key`: the Cherry connection's API key is unknown (401);
- `cherry-unreachable`: the Cherry connection points at a closed loopback port (connection refused);
- `budget-spent`: the CRM location's daily request budget runs out in the middle of the patients' sync (the
  sandbox's daily limit); once the budget is back, the next run completes it without a duplicate;
- `healthy`: nothing wrong.
Each broken practice gives one clear error naming the practice and the cause in plain words, its ledger row carries
a reason code, its task instance ends failed (credentials, unreachable) or skipped (budget: deferred) as the
operators' docstring says, and no patient data appears in any of it; the healthy practice's data lands.

Then a Cherry custom field is deleted in the healthy practice's CRM location. The product heals it: the next run
re-creates the field by its key and rewrites the affected contacts' values (they were hidden with the deleted
field), so the CRM ends exactly as before the deletion.

A run with a failed practice ends failed (the DAGs' failure watcher), so these runs go through
`failures_helpers.run_dag`, which accepts any outcome and reads the task states and XComs from the metadata DB.
`airflow dags test` retries a failed task as the scheduler would (the DAGs' 3 retries); the retry delay is
time-scaled to a second (`failures_helpers.scaled_retries`).
"""

from __future__ import annotations

import json
import re
import socket

import pytest
import yaml

from cherry_sync.store import engine_from_url, store_from_engine
from tests.dags.conftest import CRM_WINDOW, DagEnv
from tests.dags.failures_helpers import DagRunResult, run_dag, scaled_retries, xcom_values
from tests.sync.conftest import duplicates_by_contact_point

pytestmark = pytest.mark.airflow

PRACTICES = ("bad-crm-token", "bad-cherry-key", "cherry-unreachable", "budget-spent", "healthy")
BAD_CRM, BAD_KEY, UNREACHABLE, BUDGET, HEALTHY = range(5)
DAILY_LIMIT = 22  # CRM requests budget-spent may make today: provisioning (15) and the contact search fit, then
# a few of its 12 patients are written before the budget runs out
# Fast, bounded retries: a refused connection costs a fraction of a second here instead of minutes.
FAST = {"max_attempts": 3, "backoff_initial": 0.05, "backoff_max": 0.2, "connect_timeout": 2, "read_timeout": 5}
DELETED_FIELD = "contact.cherry_account_status"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on leaving the block: nothing listens there


def _conn(env: DagEnv, name: str) -> dict:
    return json.loads(env.env[name])


@pytest.fixture
def failing_env(airflow_home, tmp_path, cherry_sandbox_factory, crm_sandbox_factory) -> DagEnv:
    cherry = cherry_sandbox_factory(
        seed=5, practices=len(PRACTICES), patients_per_practice=12, rate_limits={"burst_limit": 200}
    )
    crm = crm_sandbox_factory(
        locations=len(PRACTICES), rate_limits={"burst_limit": 100, "burst_window_seconds": CRM_WINDOW}
    )
    registry = tmp_path / "practices.yml"
    registry.write_text(
        yaml.safe_dump(
            [
                {
                    "slug": slug,
                    "display_name": slug.replace("-", " ").title(),
                    "timezone": cherry.practices[index].timezone,  # agreed with Cherry and the CRM location
                    "cherry_conn_id": f"cherry_{slug.replace('-', '_')}",
                    "crm_conn_id": f"crm_{slug.replace('-', '_')}",
                    "enabled": True,
                }
                for index, slug in enumerate(PRACTICES)
            ],
            sort_keys=False,
        )
    )
    env = DagEnv(airflow_home, cherry, crm, f"sqlite:///{tmp_path / 'store.db'}", registry)
    for index, slug in enumerate(PRACTICES):
        name = slug.replace("-", "_").upper()
        cherry_conn, crm_conn = _conn(env, f"AIRFLOW_CONN_CHERRY_{name}"), _conn(env, f"AIRFLOW_CONN_CRM_{name}")
        cherry_conn["extra"] = {**FAST, "burst_limit": 190}
        crm_conn["extra"] = {**crm_conn["extra"], **FAST}
        if index == BAD_CRM:
            crm_conn["password"] = "pit-not-a-valid-token"
        elif index == BAD_KEY:
            cherry_conn["password"] = "ck_live_not_a_real_key"
        elif index == UNREACHABLE:
            cherry_conn["host"] = f"http://127.0.0.1:{_closed_port()}"
        env.extra[f"AIRFLOW_CONN_CHERRY_{name}"] = json.dumps(cherry_conn)
        env.extra[f"AIRFLOW_CONN_CRM_{name}"] = json.dumps(crm_conn)
    crm.override_rate_limits(crm.locations[BUDGET].id, daily_limit=DAILY_LIMIT)
    scaled_retries(env, tmp_path / "policy")
    return env


def _patient_data(env: DagEnv) -> set[str]:
    """Values that must never appear in an error, a log line or the ledger: e-mails, phones, full names."""
    values: set[str] = set()
    for practice in env.cherry.practices:
        for row in env.cherry.admin("GET", f"/practices/{practice.id}/patients"):
            values.update(v for v in (row.get("email"), row.get("phone")) if v and len(v) >= 6)
            values.add(f"{row.get('first_name')} {row.get('last_name')}")
            if row.get("date_of_birth"):
                values.add(row["date_of_birth"])
    return values


def _ledger(env: DagEnv, dag_id: str, run_id: str) -> dict[tuple[str, str], object]:
    store = store_from_engine(engine_from_url(env.store_url))
    return {(r.practice_slug, r.task_id): r for r in store.list_runs(dag_id=dag_id, run_id=run_id)}


def _error_lines(result: DagRunResult, slug: str) -> list[str]:
    """The lines of the run's output that report an error for this practice."""
    return [
        line
        for line in result.output.splitlines()
        if f"practice {slug}" in line and re.search(r"\[error|Exception: |Error: ", line, re.IGNORECASE)
    ]


def _contacts_by_field_key(env: DagEnv, index: int) -> dict[str, dict]:
    state = env.crm.location_state(env.crm.locations[index].id, lists=True)
    keys = {f["id"]: f["fieldKey"] for f in state["customFields"]}
    return {
        c["id"]: {
            "standard": {k: c.get(k) for k in ("firstName", "lastName", "email", "phone", "dateOfBirth")},
            "custom": {keys[item["id"]]: item.get("value") for item in c.get("customFields") or ()},
        }
        for c in state["contacts"]
    }


def synced_contacts(env: DagEnv, index: int) -> int:
    """How many CRM contacts the store says practice `index` synced its patients to (one per patient, at most)."""
    store = store_from_engine(engine_from_url(env.store_url))
    slug = PRACTICES[index]
    return len({s.crm_contact_id for s in store.iter_patient_states(slug) if s.crm_contact_id})


def test_each_broken_practice_fails_alone_with_one_clear_error(failing_env: DagEnv) -> None:
    env = failing_env
    patient_data = _patient_data(env)

    result = run_dag(env, "cherry_backfill", scope="all")

    # A failed practice fails the run (the DAG's failure watcher); `summarize` still reports every practice.
    assert result.state == "failed"
    provision, sync = result.states("provision_custom_fields"), result.states("sync_patients")
    # Its fields failed: its patients' task runs (all_done, for the other practices of a batch) and skips it.
    assert (provision[BAD_CRM], sync[BAD_CRM]) == ("failed", "skipped")
    assert (provision[BAD_KEY], sync[BAD_KEY]) == ("success", "failed")
    assert (provision[UNREACHABLE], sync[UNREACHABLE]) == ("success", "failed")
    assert (provision[BUDGET], sync[BUDGET]) == ("success", "skipped")
    assert (provision[HEALTHY], sync[HEALTHY]) == ("success", "success")
    assert result.states("summarize") == {-1: "success"}
    # Credentials wait for a person: failed at once. Unreachable may be transient: Airflow retried it (3 retries).
    tries = {(t.task_id.split(".")[-1], t.map_index): t.try_number for t in result.tasks}
    assert tries[("provision_custom_fields", BAD_CRM)] == tries[("sync_patients", BAD_KEY)] == 1
    assert tries[("sync_patients", UNREACHABLE)] == 4

    ledger = _ledger(env, "cherry_backfill", result.run_id)
    expected = {
        (PRACTICES[BAD_CRM], "practice.provision_custom_fields"): ("failed", "auth_failed"),
        (PRACTICES[BAD_KEY], "practice.sync_patients"): ("failed", "auth_failed"),
        (PRACTICES[UNREACHABLE], "practice.sync_patients"): ("failed", "unavailable"),
        (PRACTICES[BUDGET], "practice.sync_patients"): ("deferred", "daily_budget_exhausted"),
    }
    for key, (status, reason) in expected.items():
        assert (ledger[key].status, ledger[key].details.get("reason")) == (status, reason), key
    assert ledger[(PRACTICES[HEALTHY], "practice.sync_patients")].status == "success"

    # One clear error per broken practice: it names the practice and says what is wrong in plain words.
    causes = {
        BAD_CRM: r"the CRM .* rejected the token of Airflow connection 'crm_bad_crm_token' as invalid \(HTTP 401",
        BAD_KEY: r"the Cherry API rejected the API key of Airflow connection 'cherry_bad_cherry_key' as invalid",
        UNREACHABLE: r"the Cherry API could not be reached after 3 attempts .*check the host of Airflow connection",
        BUDGET: r"deferred: the CRM location's daily request budget is used up",
    }
    for index, cause in causes.items():
        lines = _error_lines(result, PRACTICES[index])
        assert lines, f"no error reported for {PRACTICES[index]}"
        assert any(re.search(cause, line, re.IGNORECASE) for line in lines), (PRACTICES[index], lines)
    assert not _error_lines(result, PRACTICES[HEALTHY])

    # No patient data anywhere in the run's output or in the ledger.
    leaked = {value for value in patient_data if value in result.output}
    assert not leaked, f"patient data in the DAG run's output: {len(leaked)} value(s)"
    details = json.dumps([r.details for r in ledger.values()], default=str)
    assert not {value for value in patient_data if value in details}
    xcoms = "\n".join(xcom_values(env.home, "cherry_backfill", result.run_id))
    assert "healthy" in xcoms and not {value for value in patient_data if value in xcoms}

    # The healthy practice's data landed; the broken ones wrote nothing.
    states = {i: env.crm.location_state(loc.id, lists=False)["counts"] for i, loc in enumerate(env.crm.locations)}
    assert states[HEALTHY]["contacts"] > 0 and states[HEALTHY]["customFields"] == 14
    assert states[BAD_CRM]["contacts"] == states[BAD_CRM]["customFields"] == 0
    assert 0 < states[BUDGET]["contacts"] < 12, "the budget ran out part-way through the patients"
    for index in (BAD_KEY, UNREACHABLE):  # fields provisioned (CRM fine), no contact (Cherry unusable)
        assert states[index]["contacts"] == 0, PRACTICES[index]

    # The next day (the budget is back) the deferred practice completes, without duplicating what it had written.
    env.crm.clear_rate_limit_override(env.crm.locations[BUDGET].id)
    healthy_contacts = env.crm.location_state(env.crm.locations[HEALTHY].id, lists=False)["counts"]["contacts"]
    again = run_dag(env, "cherry_backfill", scope="all", practices=[PRACTICES[BUDGET]])
    assert again.state == "success" and again.states("sync_patients") == {0: "success"}, again.output[-3000:]
    contacts = env.crm.location_state(env.crm.locations[BUDGET].id)["contacts"]
    assert len(contacts) == synced_contacts(env, BUDGET) and not duplicates_by_contact_point(contacts)
    assert healthy_contacts == states[HEALTHY]["contacts"]


def test_one_task_for_all_five_isolates_each_practice_and_retries_only_the_failed(failing_env: DagEnv) -> None:
    """The same five practices in ONE task instance per task (a batch): each practice still ends as it did alone,
    the task's retries redo only the practice a retry may cure, and the failure names every failed practice."""
    env = failing_env
    env.extra["CHERRY_SYNC_MIN_TASKS_PER_RUN"] = "1"

    result = run_dag(env, "cherry_backfill", scope="all", practices_per_task=5)

    assert result.state == "failed"
    assert result.states("provision_custom_fields") == {0: "failed"}  # bad-crm-token: a person must act
    assert result.states("sync_patients") == {0: "failed"}  # ran for the four others (all_done)
    labels = {t.rendered_map_index for t in result.tasks if t.task_id.endswith("sync_patients")}
    assert labels == {f"{PRACTICES[0]} .. {PRACTICES[-1]} (5)"}
    tries = {t.task_id.split(".")[-1]: t.try_number for t in result.tasks if t.map_index == 0}
    assert tries == {"provision_custom_fields": 1, "sync_patients": 4}  # retried for cherry-unreachable alone

    ledger = _ledger(env, "cherry_backfill", result.run_id)
    outcome = {key: (e.status, e.details.get("reason"), e.attempts) for key, e in ledger.items()}
    assert outcome == {
        **{
            (slug, "practice.provision_custom_fields"): ("success", None, 1)
            for slug in PRACTICES
            if slug != PRACTICES[BAD_CRM]
        },
        (PRACTICES[BAD_CRM], "practice.provision_custom_fields"): ("failed", "auth_failed", 1),
        (PRACTICES[BAD_KEY], "practice.sync_patients"): ("failed", "auth_failed", 1),
        (PRACTICES[UNREACHABLE], "practice.sync_patients"): ("failed", "unavailable", 4),
        (PRACTICES[BUDGET], "practice.sync_patients"): ("deferred", "daily_budget_exhausted", 1),
        (PRACTICES[HEALTHY], "practice.sync_patients"): ("success", None, 1),  # not redone by the retries
    }
    for index in (BAD_CRM, BAD_KEY, UNREACHABLE, BUDGET):
        assert _error_lines(result, PRACTICES[index]), f"no error reported for {PRACTICES[index]}"
    final = [
        line
        for line in result.output.splitlines()
        if "practice bad-cherry-key:" in line and "practice cherry-unreachable:" in line
    ]
    assert final, "the task's failure names every failed practice"
    counts = env.crm.location_state(env.crm.locations[HEALTHY].id, lists=False)["counts"]
    assert counts["contacts"] == synced_contacts(env, HEALTHY) > 0 and counts["customFields"] == 14


def test_deleted_custom_field_is_recreated_and_contact_values_rewritten(failing_env: DagEnv) -> None:
    env = failing_env
    env.write_registry([e for e in env.registry() if e["slug"] == PRACTICES[HEALTHY]])
    env.extra["CHERRY_SYNC_REGISTRY"] = str(env.registry_path)
    env.run("cherry_backfill", scope="all")
    location = env.crm.locations[HEALTHY]
    before = _contacts_by_field_key(env, HEALTHY)
    assert sum(1 for c in before.values() if DELETED_FIELD in c["custom"]) > 0

    fields = env.crm.location_state(location.id)["customFields"]
    field_id = next(f["id"] for f in fields if f["fieldKey"] == DELETED_FIELD)
    response = env.crm.client(HEALTHY).delete(f"/locations/{location.id}/customFields/{field_id}")
    assert response.status_code == 200, response.text
    assert all(DELETED_FIELD not in c["custom"] for c in _contacts_by_field_key(env, HEALTHY).values())

    out = env.run("cherry_refresh")  # no Cherry event: only the healing has anything to do

    assert _contacts_by_field_key(env, HEALTHY) == before
    fields = env.crm.location_state(location.id)["customFields"]
    assert sorted(f["fieldKey"] for f in fields).count(DELETED_FIELD) == 1 and len(fields) == 14
    assert re.search(rf"practice {PRACTICES[HEALTHY]}: .*re-?created", out), out[-4000:]

    writes = env.crm_writes(location.id)
    env.run("cherry_refresh")
    assert env.crm_writes(location.id) == writes, "healed once: the next run makes no CRM write"


def test_a_practice_whose_time_zones_disagree_fails_alone(dag_env: DagEnv) -> None:
    """Someone moved one CRM location to another zone: that practice fails at once (no retries) with one sentence
    naming the three zones and the fix; the other practices sync; the failed one wrote no contact."""
    env = dag_env
    slugs = [entry["slug"] for entry in env.registry()]
    moved = 1
    env.crm.set_location_timezone(env.crm.locations[moved].id, "America/Denver")

    result = run_dag(env, "cherry_backfill")

    assert result.state == "failed"
    sync = result.states("sync_patients")
    assert sync == {0: "success", 1: "failed", 2: "success"}, result.output[-3000:]
    tries = {(t.task_id.split(".")[-1], t.map_index): t.try_number for t in result.tasks}
    assert tries[("sync_patients", moved)] == 1, "a person must act: not retried"
    ledger = _ledger(env, "cherry_backfill", result.run_id)
    entry = ledger[(slugs[moved], "practice.sync_patients")]
    assert (entry.status, entry.details.get("reason")) == ("failed", "timezone_mismatch")
    zone = env.cherry.practices[moved].timezone
    sentence = (
        f"practice {slugs[moved]}: time zones disagree: the registry says {zone}, Cherry keeps the practice in {zone} "
        f"and the CRM location is in America/Denver; set the CRM location's time zone (Settings > Business Profile) "
        f"to {zone}, or pin the registry's zone with `timezone_pinned: true`"
    )
    assert any(sentence in line for line in _error_lines(result, slugs[moved])), _error_lines(result, slugs[moved])
    counts = {i: env.crm.location_state(loc.id, lists=False)["counts"] for i, loc in enumerate(env.crm.locations)}
    assert counts[moved]["contacts"] == 0
    assert counts[0]["contacts"] > 0 and counts[2]["contacts"] > 0
