"""The `cherry` and `aesthetix_crm` connection types in Airflow's connection form, from the installed package.

The api-server runs from a venv where the project's wheel is pip-installed (conftest.py `connections_ui`). Like an
operator would, the test opens Admin > Connections > Add Connection, finds both types in the type list, checks
their forms (standard fields relabelled or hidden, the custom extra fields), fills and saves one connection of each
type against the loopback sandboxes plus one with a wrong API key, then clicks each row's Test button: the good ones
pass after a real authenticated call to the sandbox, the wrong key fails with a message that does not hold it.
Screenshots of each step are kept in test-artifacts/ui/.
"""

from __future__ import annotations

import pytest
import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import ARTIFACTS, PASSWORD, USER, ConnectionsUI

pytestmark = [pytest.mark.browser, pytest.mark.airflow]

UI_TIMEOUT = 90
CHERRY_TYPE, CRM_TYPE = "Cherry partner API", "Aesthetix CRM (HighLevel v2)"
WRONG_KEY = "ck_sandbox_thisisnotthekey0000"


def _shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"connection-{name}.png"))


def _dialog(driver: WebDriver) -> WebElement:
    return WebDriverWait(driver, UI_TIMEOUT).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]")))


def _labels(dialog: WebElement) -> list[str]:
    labels = dialog.find_elements(By.CSS_SELECTOR, "label[data-part=label]")
    return [label.text.replace("*", "").strip() for label in labels if label.text.strip()]


def _input(dialog: WebElement, label: str) -> WebElement:
    """The input or textarea of the form row labelled `label`."""
    for row in dialog.find_elements(By.CSS_SELECTOR, "[data-scope=field][data-part=root]"):
        labels = row.find_elements(By.CSS_SELECTOR, "label[data-part=label]")
        if labels and labels[0].text.replace("*", "").strip() == label:
            return row.find_element(By.CSS_SELECTOR, "input, textarea")
    pytest.fail(f"no field labelled {label!r} (fields: {_labels(dialog)})")


def _open_section(dialog: WebElement, title: str) -> None:
    trigger = dialog.find_element(By.XPATH, f".//button[normalize-space(.)='{title}']")
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()


def _add(driver: WebDriver, conn_type: str) -> WebElement:
    """Open Add Connection, pick `conn_type` from the type list (after checking both types are there)."""
    wait = WebDriverWait(driver, UI_TIMEOUT)
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[contains(., 'Add Connection')]"))).click()
    dialog = _dialog(driver)
    combo = dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    combo.click()
    options = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=option]"))
    types = [option.text for option in options]
    assert CHERRY_TYPE in types and CRM_TYPE in types, f"the type list: {types}"
    next(option for option in options if option.text == conn_type).click()
    wait.until(lambda d: "API base URL" in _labels(dialog))
    return dialog


def _save(driver: WebDriver, dialog: WebElement, name: str) -> None:
    _shot(driver, name)
    dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Save']").click()
    WebDriverWait(driver, UI_TIMEOUT).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]")))


def _fill(dialog: WebElement, label: str, value: str) -> None:
    field = _input(dialog, label)
    field.clear()
    field.send_keys(value)


def _endpoint(dialog: WebElement, base_url: str) -> None:
    """Host and port as separate fields: Airflow 3.3's list sends port 0 for a connection without one, which its
    test endpoint refuses as a changed endpoint (provider.py)."""
    host, port = base_url.rsplit(":", 1)
    _fill(dialog, "API base URL", host)
    _fill(dialog, "Port", port)


def _toasts(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "[data-scope=toast][data-part=root]")


def _test_row(driver: WebDriver, conn_id: str) -> tuple[str, str]:
    """Click the Test button of `conn_id`'s row; (title, message) of the toast that answers it."""
    wait = WebDriverWait(driver, UI_TIMEOUT)
    earlier = {toast.id for toast in _toasts(driver)}  # toasts of earlier tests may still be on screen
    row = wait.until(EC.visibility_of_element_located((By.XPATH, f"//tr[.//td[normalize-space(.)='{conn_id}']]")))
    row.find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']").click()

    def answer() -> tuple[str, str] | None:
        try:
            for toast in _toasts(driver):
                if toast.id in earlier:
                    continue
                title = toast.find_element(By.CSS_SELECTOR, "[data-part=title]").text.strip()
                if title.startswith("Test Connection"):
                    return title, toast.find_element(By.CSS_SELECTOR, "[data-part=description]").text.strip()
        except WebDriverException:  # re-rendered while read
            return None
        return None

    result = wait.until(lambda _: answer())
    _shot(driver, f"test-{conn_id}")
    return result


def test_both_connection_types_in_the_form_and_their_test_button(connections_ui: ConnectionsUI, browser: WebDriver):
    driver, ui = browser, connections_ui
    wait = WebDriverWait(driver, UI_TIMEOUT)
    cherry_key = ui.cherry.practices[0].api_key
    location = ui.crm.location(0)

    driver.get(f"{ui.base_url}/")
    wait.until(EC.visibility_of_element_located((By.NAME, "username"))).send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.XPATH, "//button[@type='submit']").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)
    driver.get(f"{ui.base_url}/connections")

    # Cherry: host and password relabelled, login / port / schema hidden, the pacing and retry extras as fields.
    dialog = _add(driver, CHERRY_TYPE)
    standard = _labels(dialog)
    assert {"API base URL", "API key"} <= set(standard)
    assert not {"Host", "Password", "Login", "Schema"} & set(standard), standard
    _fill(dialog, "Connection ID", "cherry_form")
    _endpoint(dialog, ui.cherry.base_url)
    _fill(dialog, "API key", cherry_key)
    _open_section(dialog, "Extra Fields")
    wait.until(lambda _: "Burst limit" in _labels(dialog))
    assert {"Burst limit", "Burst window (seconds)", "Read timeout (seconds)", "Max attempts", "TLS verify"} <= set(
        _labels(dialog)
    )
    _fill(dialog, "Burst limit", "10")
    _save(driver, dialog, "cherry-form")

    # The CRM: the token relabelled, the location id and the CRM's pacing extras as fields.
    dialog = _add(driver, CRM_TYPE)
    assert {"API base URL", "Private Integration Token"} <= set(_labels(dialog))
    _fill(dialog, "Connection ID", "crm_form")
    _endpoint(dialog, ui.crm.base_url)
    _fill(dialog, "Private Integration Token", location.token)
    _open_section(dialog, "Extra Fields")
    wait.until(lambda _: "Location id" in _labels(dialog))
    assert {"Location id", "Burst limit", "Daily reserve", "Max in flight", "TLS verify"} <= set(_labels(dialog))
    _fill(dialog, "Location id", location.id)
    _save(driver, dialog, "crm-form")

    dialog = _add(driver, CHERRY_TYPE)
    _fill(dialog, "Connection ID", "cherry_wrong_key")
    _endpoint(dialog, ui.cherry.base_url)
    _fill(dialog, "API key", WRONG_KEY)
    _save(driver, dialog, "cherry-wrong-key")

    # What the form stored: the types, and the custom fields as the extras the hooks read.
    token = requests.post(f"{ui.base_url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    stored = {
        conn_id: requests.get(f"{ui.base_url}/api/v2/connections/{conn_id}", headers=headers, timeout=30).json()
        for conn_id in ("cherry_form", "crm_form")
    }
    assert (stored["cherry_form"]["conn_type"], stored["crm_form"]["conn_type"]) == ("cherry", "aesthetix_crm")
    assert '"location_id": "' + location.id + '"' in stored["crm_form"]["extra"].replace('":"', '": "')

    # Test, from each row: a real call to the sandbox for the good ones; the wrong key fails without showing it.
    cherry_before, crm_before = ui.cherry.stats()["total"], ui.crm.stats()["total"]
    title, message = _test_row(driver, "cherry_form")
    assert title == "Test Connection Successful", message
    assert ui.cherry.stats()["total"] > cherry_before
    title, message = _test_row(driver, "crm_form")
    assert title == "Test Connection Successful", message
    assert ui.crm.stats()["total"] > crm_before
    title, message = _test_row(driver, "cherry_wrong_key")
    assert title == "Test Connection Failed"
    assert "rejected the API key" in message, message
    assert WRONG_KEY not in message and WRONG_KEY[-10:] not in message and cherry_key not in message
