"""The /docs page in a real headless browser (Debian's chromium, driven through chromium-driver
with selenium): it loads with no network beyond the gateway, lists the operations, and a
predict call made from the page ("Try it out", "Execute") returns forecasts.

Without chromium this test skips locally and FAILS with CI=true (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage")
WAIT_S = 30


def _browser_or_reason() -> tuple[str, str] | str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    return ("needs Debian's chromium and chromium-driver (apt-get install chromium "
            "chromium-driver; .ci/run installs them)")


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator:
    """A headless chromium with a fresh profile; fails in CI when it is missing."""
    found = _browser_or_reason()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(found, pytrace=False)
        pytest.skip(found)
    from selenium import webdriver  # a dev dependency: missing is an error, never a skip
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    # The driver comes from Debian too: no Selenium Manager, no download.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def test_docs_page_lists_operations_and_predicts(browser, scripted_gateway, make_artifact) -> None:
    from forecast_gateway.dataplane import Tenant
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    gw = scripted_gateway(http_port=0)
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("v1"))
    key = gw.api_key("shop")
    wait = WebDriverWait(browser, WAIT_S)

    browser.get(f"http://127.0.0.1:{gw.server.http_port}/docs")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    paths = {e.get_attribute("data-path")
             for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/predict", "/train", "/metrics", "/api/v1/predict",
            "/v1/retailers/{retailer}:predict", "/v1/retailers/{header.retailer}/datasets"} <= paths
    # Nothing came from anywhere but the gateway (no CDN).
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) == {f"http://127.0.0.1:{gw.server.http_port}"}, origins

    # The key, as the page's Authorize dialog would store it.
    browser.execute_script("window.ui.preauthorizeApiKey('bearer', arguments[0])", key)
    block = next(e for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-post")
                 if e.find_element(By.CSS_SELECTOR, ".opblock-summary-path")
                 .get_attribute("data-path") == "/predict")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    body = wait.until(lambda _: block.find_element(By.CSS_SELECTOR, "textarea.body-param__text"))
    body.clear()
    body.send_keys(json.dumps({"retailer": "shop", "rows": [
        {"date": "2017-08-16", "store_nbr": 3, "family": "BREAD/BAKERY", "onpromotion": 0}]}))
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait.until(lambda _: block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"))
    answer = block.find_element(By.CSS_SELECTOR,
                                ".live-responses-table .response .response-col_description pre")
    assert status.text.strip().startswith("200"), (status.text, answer.text)
    assert json.loads(answer.text)["forecast"] == [3000.0]
