"""The Cherry Sync page in Airflow's UI, in a real browser, after real runs of the DAGs.

On the shared `airflow standalone` stack (conftest.py), two patients of one practice get canary names, e-mails and
phones in the Cherry sandbox; cherry_backfill then cherry_refresh run for real (REST API). Selenium logs in, opens
"Cherry Sync" from the UI's navigation (the page is framed by the UI), checks the practices table against the
registry and the runs, opens the practice's page, looks a canary patient up by its Cherry id and then by the CRM
contact id the page showed (the CRM sandbox must hold that contact), and downloads the backfill's CSV. No canary
value may appear in any page or in the CSV. A user without DAG-run read gets 403 and sees nothing; an anonymous
request is refused. Screenshots go to test-artifacts/ui/; with CHERRY_SYNC_UPDATE_SCREENSHOTS=1 the overview also
replaces the README's docs/img/ops-page.png (a test run leaves tracked files alone otherwise).

The last test checks, in-process, that the page asks the auth manager for DAG-run read specifically: an auth
manager that grants everything but `DagAccessEntity.RUN` is refused.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from scripts.local_env import REPO, registry_practices
from tests.ui.conftest import ARTIFACTS, NO_ROLE_PASSWORD, NO_ROLE_USER, PASSWORD, USER, AirflowUI, wait_for

UI_TIMEOUT = 90
RUN_TIMEOUT = 600
PRACTICE = "harbor-dermatology"
SCREENSHOT = REPO / "docs" / "img" / "ops-page.png"
# Values no id, hash, timestamp or run id could hold by chance; given to two patients before the backfill.
CANARIES = [
    {
        "first_name": f"Qorvcanary{n}",
        "last_name": f"Plixcanary{n}",
        "email": f"qorv.canary{n}@canary-mail.example",
        "phone": f"+1 312 555 01{n:02d}",
        "date_of_birth": f"1929-03-1{n}",
    }
    for n in (1, 2)
]


def _canary_patterns() -> list[re.Pattern]:
    patterns = []
    for canary in CANARIES:
        digits = re.sub(r"\D", "", canary["phone"])[-10:]
        year, month, day = canary["date_of_birth"].split("-")
        patterns += [
            re.compile(re.escape(canary["first_name"]), re.I),
            re.compile(re.escape(canary["last_name"]), re.I),
            re.compile(re.escape(canary["email"].split("@")[0]), re.I),
            re.compile(rf"{year}\W?{month}\W?{day}|{month}/{day}/{year}"),
            re.compile(r"\D{0,2}".join([digits[:3], digits[3:6], digits[6:]])),
        ]
    return patterns


def _assert_no_canary(where: str, text: str) -> None:
    found = [p.pattern for p in _canary_patterns() if p.search(text)]
    assert not found, f"patient data in {where}: {found}"


def _shot(driver: WebDriver, name: str) -> Path:
    path = ARTIFACTS / f"ops-{name}.png"
    driver.save_screenshot(str(path))
    return path


def _seed_canaries(ui: AirflowUI) -> list[str]:
    """Give two ACTIVE patients of PRACTICE canary values in the Cherry sandbox; returns their ids."""
    index = next(i for i, p in enumerate(registry_practices()) if p["slug"] == PRACTICE)
    key = ui.sandboxes.info["cherry"]["practices"][index]["api_key"]
    response = requests.get(
        f"{ui.sandboxes.cherry_url}/v1/patients",
        params={"status": "ACTIVE", "limit": 50},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    response.raise_for_status()
    patients = response.json()["data"][:2]
    for patient, canary in zip(patients, CANARIES, strict=True):
        edit = requests.patch(f"{ui.sandboxes.cherry_url}/_sandbox/patients/{patient['id']}", json=canary, timeout=30)
        edit.raise_for_status()
    return [p["id"] for p in patients]


def _run(ui: AirflowUI, dag_id: str, conf: dict) -> str:
    ui.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    response = ui.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]

    def finished() -> str | None:
        state = ui.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}").json()["state"]
        return state if state in ("success", "failed") else None

    state = wait_for(f"{dag_id} {run_id} to finish", finished, RUN_TIMEOUT, interval=3, log=ui.log_path)
    assert state == "success", f"{dag_id} {run_id} ended {state}\n{ui.log_tail()}"
    # Unpausing lets the scheduler start the DAG's own scheduled run too: pause again and let it finish, so the
    # page is checked against runs that are over.
    ui.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True}).raise_for_status()
    wait_for(
        f"every {dag_id} run to finish",
        lambda: all(r["state"] in ("success", "failed") for r in ui.dag_runs(dag_id)),
        RUN_TIMEOUT,
        interval=3,
        log=ui.log_path,
    )
    return run_id


def _login(driver: WebDriver, ui: AirflowUI, user: str, password: str) -> None:
    wait = WebDriverWait(driver, UI_TIMEOUT)
    driver.delete_all_cookies()
    driver.get(f"{ui.base_url}/")
    wait.until(EC.visibility_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.XPATH, "//button[@type='submit']").click()
    wait.until(lambda d: "/auth/login" not in d.current_url and d.get_cookie("_token"))


def _frame(driver: WebDriver) -> None:
    """Switch into the UI's frame of the Cherry Sync page."""
    driver.switch_to.default_content()
    frame = WebDriverWait(driver, UI_TIMEOUT).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Cherry Sync']"))
    )
    driver.switch_to.frame(frame)


def _cells(driver: WebDriver, table: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"table#{table} tbody tr")
    return [[cell.text.strip() for cell in row.find_elements(By.CSS_SELECTOR, "td")] for row in rows]


def _download(folder: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob("*.csv") if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.5)
    pytest.fail(f"no CSV downloaded into {folder} within {timeout}s: {list(folder.iterdir())}")


@pytest.mark.browser
@pytest.mark.airflow
def test_ops_page_after_real_runs(airflow_ui: AirflowUI, browser: WebDriver, tmp_path: Path):
    driver, ui = browser, airflow_ui
    wait = WebDriverWait(driver, UI_TIMEOUT)
    canary_ids = _seed_canaries(ui)
    backfill = _run(ui, "cherry_backfill", {})
    refresh = _run(ui, "cherry_refresh", {})
    practices = [p for p in registry_practices() if p.get("enabled", True)]

    # Anonymous: a browser is sent to the login page, anything else gets 401; nothing of the page either way.
    page = requests.get(
        f"{ui.base_url}/cherry-sync/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=30
    )
    assert page.status_code == 303 and "/auth/login" in page.headers["location"], page.status_code
    for path in ("/cherry-sync/", f"/cherry-sync/practices/{PRACTICE}/outcomes.csv?run_id={quote(backfill, safe='')}"):
        refused = requests.get(f"{ui.base_url}{path}", timeout=30)
        assert refused.status_code == 401 and PRACTICE not in refused.text, (path, refused.status_code)

    # 1. Log in and open the page from the UI's navigation: it is framed by the UI.
    _login(driver, ui, USER, PASSWORD)
    nav = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a[href$='plugin/cherry-sync']")))
    nav.click()
    wait.until(lambda d: "/plugin/cherry-sync" in d.current_url)
    _frame(driver)
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table#practices")))
    driver.switch_to.default_content()
    time.sleep(1)  # the frame's fonts settle
    overview = _shot(driver, "01-overview")
    if os.environ.get("CHERRY_SYNC_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(overview, SCREENSHOT)
    _frame(driver)

    # 2. The practices table: every registry practice, enabled, its CRM auth, the runs that just happened.
    rows = {row.get_attribute("data-slug"): row for row in driver.find_elements(By.CSS_SELECTOR, "#practices tbody tr")}
    assert set(rows) == {p["slug"] for p in registry_practices()}
    for practice in practices:
        row = rows[practice["slug"]]
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        assert cells[1].text == "yes" and cells[2].text == practice.get("crm_auth", "pit"), practice["slug"]
        for dag_id, run_id in (("cherry_backfill", backfill), ("cherry_refresh", refresh)):
            cell = row.find_element(By.CSS_SELECTOR, f"td.run[data-dag='{dag_id}']")
            link = cell.find_element(By.LINK_TEXT, "run")
            assert link.get_attribute("target") == "_top"
            # The last run: ours, or the scheduler's own run of the DAG if that one started later.
            runs = {r["dag_run_id"]: r["state"] for r in ui.dag_runs(dag_id)}
            shown = unquote(link.get_attribute("href").rsplit("/runs/", 1)[1])
            assert link.get_attribute("href").startswith(f"{ui.base_url}/dags/{dag_id}/runs/"), link
            assert shown in runs and run_id in runs and runs[shown] == "success", (dag_id, shown, runs)
            assert "success" in cell.text, (practice["slug"], dag_id, cell.text)
        alerts = row.find_element(By.CSS_SELECTOR, "td.alerts").text
        assert alerts.startswith(("ok", "raised")), f"{practice['slug']}: the runs' alert states ({alerts!r})"
    _assert_no_canary("the overview", driver.page_source)

    # 3. The practice's page: the chart, the backfill among its runs with counts, a CSV link.
    rows[PRACTICE].find_element(By.CSS_SELECTOR, "td a").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table#runs")))
    driver.switch_to.default_content()
    wait.until(lambda d: f"/plugin/cherry-sync/cherry-sync/practices/{PRACTICE}" in d.current_url)  # deep link
    _shot(driver, "02-practice")
    _frame(driver)
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect"), "the runs chart has bars"
    run_row = driver.find_element(By.CSS_SELECTOR, f"#runs tr[data-run-id='{backfill}'][data-dag='cherry_backfill']")
    created = int(run_row.find_elements(By.CSS_SELECTOR, "td")[6].text)
    assert created >= 2, f"the backfill created {created} contacts for {PRACTICE}"
    _assert_no_canary("the practice page", driver.page_source)

    # 4. Look-up by the canary patient's Cherry id: the store's contact id and hash, the runs that touched it.
    driver.find_element(By.LINK_TEXT, "Record look-up").click()
    Select(wait.until(EC.visibility_of_element_located((By.ID, "practice")))).select_by_value(PRACTICE)
    driver.find_element(By.ID, "source_id").send_keys(canary_ids[0])
    driver.find_element(By.ID, "find").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table#states")))
    driver.switch_to.default_content()
    _shot(driver, "03-lookup-patient")
    _frame(driver)
    ((slug, patient_id, contact_id, written_hash, *_rest),) = _cells(driver, "states")
    assert (slug, patient_id) == (PRACTICE, canary_ids[0]) and contact_id and written_hash
    history = _cells(driver, "history")
    touched = {(row[2].splitlines()[0], row[7], row[8]) for row in history if len(row) > 8}
    assert ("cherry_backfill", "create", "ok") in touched, history
    _assert_no_canary("the look-up by patient id", driver.page_source)
    location = ui.sandboxes.info["crm"]["locations"][
        next(i for i, p in enumerate(registry_practices()) if p["slug"] == PRACTICE)
    ]["id"]
    contacts = requests.get(f"{ui.sandboxes.crm_url}/_sandbox/state/{location}", timeout=30).json()["contacts"]
    assert contact_id in {c["id"] for c in contacts}, "the page shows the contact the CRM holds"

    # 5. Look-up by that CRM contact id (any practice): the same patient.
    driver.get(f"{ui.base_url}/plugin/cherry-sync/cherry-sync/lookup")
    _frame(driver)
    wait.until(EC.visibility_of_element_located((By.ID, "crm_id"))).send_keys(contact_id)
    driver.find_element(By.ID, "find").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table#states")))
    assert [row[1] for row in _cells(driver, "states")] == [canary_ids[0]]
    assert any(contact_id in row for row in _cells(driver, "history")), "the history names the contact"
    driver.switch_to.default_content()
    _shot(driver, "04-lookup-contact")
    _frame(driver)
    _assert_no_canary("the look-up by contact id", driver.page_source)

    # 6. The backfill's CSV, downloaded from the practice page.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.get(f"{ui.base_url}/plugin/cherry-sync/cherry-sync/practices/{PRACTICE}")
    _frame(driver)
    link = wait.until(
        EC.element_to_be_clickable(
            (By.CSS_SELECTOR, f"#runs tr[data-run-id='{backfill}'][data-dag='cherry_backfill'] a.csv")
        )
    )
    link.click()
    text = _download(downloads).read_text(encoding="utf-8")
    _assert_no_canary("the CSV", text)
    records = list(csv.DictReader(io.StringIO(text)))
    assert records and {r["run_id"] for r in records} == {backfill}
    assert {r["practice_slug"] for r in records} == {PRACTICE}
    mine = [r for r in records if r["source_id"] == canary_ids[0] and r["entity"] == "patient"]
    assert [(r["operation"], r["result"], r["crm_id"]) for r in mine] == [("create", "ok", contact_id)], mine
    assert len({r["source_id"] for r in records if r["entity"] == "patient" and r["operation"] == "create"}) == created

    # 7. A user who may not read DAG runs: 403 and nothing of the page, in the browser and through the API.
    driver.switch_to.default_content()
    _login(driver, ui, NO_ROLE_USER, NO_ROLE_PASSWORD)
    driver.get(f"{ui.base_url}/cherry-sync/")
    status = wait.until(EC.visibility_of_element_located((By.ID, "error-status")))
    assert status.text == "403"
    _shot(driver, "05-refused")
    assert not driver.find_elements(By.CSS_SELECTOR, "table"), "a refused user sees no table"
    assert PRACTICE not in driver.page_source
    token = requests.post(
        f"{ui.base_url}/auth/token", json={"username": NO_ROLE_USER, "password": NO_ROLE_PASSWORD}, timeout=30
    ).json()["access_token"]
    for path in (
        "/cherry-sync/",
        f"/cherry-sync/lookup?source_id={canary_ids[0]}",
        f"/cherry-sync/practices/{PRACTICE}/outcomes.csv?run_id={quote(backfill, safe='')}",
    ):
        refused = requests.get(f"{ui.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert refused.status_code == 403 and canary_ids[0] not in refused.text, (path, refused.status_code)


def test_the_page_asks_for_dag_run_read(monkeypatch):
    """`may_read_runs` asks the configured auth manager for GET on DAG runs of every Cherry Sync DAG: an auth manager
    that allows everything but runs refuses, the simple auth manager's VIEWER passes, a user with no role does not."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from cherry_sync.ops.auth import may_read_runs
    from cherry_sync.ops.views import SYNC_DAG_IDS

    asked: list[tuple] = []

    class RunBlindAuthManager(SimpleAuthManager):
        def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
            asked.append((method, access_entity, details.id if details else None))
            return access_entity is not DagAccessEntity.RUN

    viewer = SimpleAuthManagerUser(username="viewer", role="VIEWER")
    monkeypatch.setattr(api_app._AuthManagerState, "instance", RunBlindAuthManager())
    assert may_read_runs(viewer, SYNC_DAG_IDS) is False
    assert asked and asked[0] == ("GET", DagAccessEntity.RUN, SYNC_DAG_IDS[0])

    monkeypatch.setattr(api_app._AuthManagerState, "instance", SimpleAuthManager())
    assert may_read_runs(viewer, SYNC_DAG_IDS) is True
    assert may_read_runs(SimpleAuthManagerUser(username="nobody", role=""), SYNC_DAG_IDS) is False
