"""cherry_backfill's trigger form in a real browser: log in, fill the form, trigger, watch the run succeed.

Airflow runs as `make airflow` runs it (conftest.py); Selenium drives headless Chromium like a person would:
labels and descriptions are read from the rendered form, the practice is chosen from the picker's menu (no
typing), dry run is switched on by clicking it. The run must then show "Success" in the UI, the REST API must
report the conf the form sent, and the CRM sandbox must have received no write (dry run).
Screenshots of each step are kept in test-artifacts/ui/.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import ARTIFACTS, PASSWORD, USER, AirflowUI

pytestmark = [pytest.mark.browser, pytest.mark.airflow]

DAG_ID = "cherry_backfill"
PRACTICE = "harbor-dermatology"
PRACTICE_LABEL = "Harbor Dermatology (harbor-dermatology)"  # values_display: the registry's display_name + slug
UI_TIMEOUT = 90  # seconds for a page or dialog to render on a slow, busy machine
RUN_TIMEOUT = 300  # seconds for the triggered run to finish

# Label -> words its description must contain, as a data engineer reads them in the form.
FIELDS = {
    "Practices": "Leave empty for every enabled practice",
    "Scope": "Which Cherry patients to pull",
    "Dry run": "zero CRM writes",
    "Page size": "Records per Cherry API page",
}


def _shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _field(dialog: WebElement, label: str) -> WebElement:
    """The form row (label, input, description) whose label reads `label`."""
    rows = dialog.find_elements(By.CSS_SELECTOR, "[data-scope=field][data-part=root]")
    for row in rows:
        labels = row.find_elements(By.CSS_SELECTOR, "label[data-part=label]")
        if labels and labels[0].text.replace("*", "").strip() == label:
            return row
    shown = [r.text.splitlines()[0] for r in rows if r.text]
    pytest.fail(f"no field labelled {label!r} in the trigger form (fields: {shown})")


def _run_state_badge(driver: WebDriver) -> str:
    try:
        badge = driver.find_element(By.CSS_SELECTOR, "[data-testid=header-card] [data-testid=state-badge]")
        return badge.text.strip()
    except WebDriverException:  # not rendered yet, or re-rendered while polling
        return ""


def test_trigger_backfill_from_the_form_dry_run_for_one_practice(airflow_ui: AirflowUI, browser: WebDriver):
    driver, ui = browser, airflow_ui
    wait = WebDriverWait(driver, UI_TIMEOUT)
    # The stack is shared with the operations page's test, which may have run DAGs first.
    writes_before = ui.crm_writes()
    runs_before = {r["dag_run_id"] for r in ui.dag_runs(DAG_ID)}

    # 1. Log in through the simple auth manager's login page.
    driver.get(f"{ui.base_url}/")
    username = wait.until(EC.visibility_of_element_located((By.NAME, "username")))
    username.send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    _shot(driver, "01-login")
    driver.find_element(By.XPATH, "//button[@type='submit']").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)

    # 2. The DAG's page.
    driver.get(f"{ui.base_url}/dags/{DAG_ID}")
    trigger = wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']")))
    wait.until(EC.visibility_of_element_located((By.XPATH, f"//h2[normalize-space()='{DAG_ID}']")))
    _shot(driver, "02-dag-page")

    # 3. The trigger form: labelled fields with their descriptions, sensible defaults.
    trigger.click()
    dialog = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[data-scope=dialog][data-part=content]")))
    wait.until(EC.visibility_of_element_located((By.ID, "element_practices")))
    for label, description in FIELDS.items():
        row = _field(dialog, label)
        helper = row.find_element(By.CSS_SELECTOR, "[data-part=helper-text]").text
        assert description in helper, f"{label}: description {helper!r} lacks {description!r}"
    practices = dialog.find_element(By.ID, "element_practices")
    practices_label = _field(dialog, "Practices").find_element(By.CSS_SELECTOR, "label[data-part=label]")
    assert "*" not in practices_label.text, "Practices is optional (empty = every enabled practice)"
    assert "(" not in practices.text, f"no practice is chosen by default, the picker shows {practices.text!r}"
    assert dialog.find_element(By.ID, "element_scope").text.strip() == "Active patients"
    dry_run = dialog.find_element(By.NAME, "element_dry_run")
    assert not dry_run.is_selected(), "dry run must default to off"
    assert dialog.find_element(By.NAME, "element_page_size").get_attribute("value") == "500"

    # 4. Choose one practice from the picker's menu (no typing): every registry practice is offered by name.
    practices.find_element(By.CSS_SELECTOR, "input").click()
    option_xpath = "//*[starts-with(@id,'react-select') and contains(@id,'-option-')]"
    wait.until(EC.visibility_of_element_located((By.XPATH, option_xpath)))
    offered = [o.text for o in driver.find_elements(By.XPATH, option_xpath)]
    assert offered == [
        "Glow Aesthetics (glow-aesthetics)",
        "Lumen MedSpa (lumen-medspa)",
        "Harbor Dermatology (harbor-dermatology)",
    ]
    driver.find_element(By.XPATH, f"{option_xpath}[normalize-space()='{PRACTICE_LABEL}']").click()
    wait.until(lambda d: PRACTICE_LABEL in practices.text)
    assert practices.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == ""

    # 5. Dry run on, by clicking the switch.
    dialog.find_element(By.CSS_SELECTOR, "[id='switch:element_dry_run']").click()
    wait.until(lambda d: dry_run.is_selected())
    _shot(driver, "03-form-filled")

    # 6. Trigger: the UI opens the new run, which must reach "Success" there.
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Trigger']").click()
    wait.until(lambda d: f"/dags/{DAG_ID}/runs/" in d.current_url)
    wait.until(lambda d: _run_state_badge(d) != "")
    terminal = {"Success", "Failed"}
    try:
        WebDriverWait(driver, RUN_TIMEOUT, poll_frequency=2).until(lambda d: _run_state_badge(d) in terminal)
    except TimeoutException:
        _shot(driver, "04-run-not-finished")
        pytest.fail(f"the run did not finish in {RUN_TIMEOUT}s: UI shows {_run_state_badge(driver)!r}\n{ui.log_tail()}")
    state = _run_state_badge(driver)
    _shot(driver, "04-run-succeeded" if state == "Success" else "04-run-failed")
    assert state == "Success", f"the run shows {state!r} in the UI\n{ui.log_tail()}"

    # 7. The API agrees, with the conf the form sent; the dry run wrote nothing to the CRM.
    (run,) = [r for r in ui.dag_runs(DAG_ID) if r["dag_run_id"] not in runs_before]
    assert run["state"] == "success"
    assert run["dag_run_id"] in unquote(driver.current_url), "the UI opened the run it triggered"
    assert run["conf"]["practices"] == [PRACTICE]
    assert run["conf"]["dry_run"] is True
    assert run["conf"]["scope"] == "active"
    assert run["conf"]["page_size"] == 500
    tasks = ui.api("GET", f"/dags/{DAG_ID}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances").json()[
        "task_instances"
    ]
    synced = [t for t in tasks if t["task_id"] == "practice.sync_patients"]
    assert [t["state"] for t in synced] == ["success"], "exactly one practice (the chosen one) was synced"
    assert ui.crm_writes() == writes_before, "a dry run must make zero CRM writes"
