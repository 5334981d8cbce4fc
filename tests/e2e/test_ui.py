"""The web page in a real headless browser (Debian's chromium through Selenium) on the
session's servers: pick groups, ask, see a highlighted citation and its passage, rate the
answer, find the rating on the trace in MLflow and in the operator view.

The generator is the copying stand-in (the tiny random model answers nothing to cite);
Weaviate, MLflow and the query log are real. With DUALENGINE_SCREENSHOT_DIR set, screenshots
of the answer page, the operator view and the trace in the MLflow UI are written there
(that is how docs/*.png are made)."""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from dualengine import endpoints

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
QUESTION = "When did the Normans settle in Normandy?"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
]


class CopyingGenerator:
    """Copies the first words of passage 1 and cites it (a reader that always answers)."""

    def answer_many(self, system, questions, contexts, max_new_tokens, raw=False, **_):
        return [" ".join(ctx[0]["text"].split()[:5]) + " [1]" if ctx else "" for ctx in contexts]


@pytest.fixture(scope="module")
def app_url(first_run, settings):
    import httpx
    import uvicorn

    from dualengine.api import engine_for
    from dualengine.webapp import create_app

    engine = engine_for(settings, CopyingGenerator(), "copy", caller="ui")
    port = endpoints.free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, lambda: engine), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engine.close()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail(
            "chromium and chromium-driver are needed: apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    from selenium.common.exceptions import SessionNotCreatedException

    for attempt in range(3):  # on a loaded machine chromium may miss the driver's start window
        try:
            driver = webdriver.Chrome(service=Service(DRIVER), options=options)
            break
        except SessionNotCreatedException:
            if attempt == 2:
                raise
            time.sleep(5)
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def with_credentials(url: str) -> str:
    from urllib.parse import quote

    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    if not (user and password):
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


def screenshot(driver, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    target = os.environ.get("DUALENGINE_SCREENSHOT_DIR")
    if target:
        shutil.copy(path, Path(target) / name)
    return path


def test_ask_see_a_citation_rate_and_find_the_rating_in_mlflow(
    app_url, browser, settings, tmp_path
):
    from selenium.webdriver.common.by import By

    from mlflow import MlflowClient
    from tasks.query_log import QueryLog

    browser.get(app_url + "/")
    boxes = browser.find_elements(By.CSS_SELECTOR, "input[name=groups]")
    assert {b.get_attribute("value") for b in boxes} == set(
        settings.params()["retrieval"]["default_groups"]
    )
    browser.find_element(By.ID, "group-public").click()
    browser.find_element(By.ID, "question").send_keys(QUESTION)
    browser.find_element(By.ID, "ask").click()

    answer = browser.find_element(By.ID, "answer").text
    trace_id = browser.find_element(By.ID, "trace-id").text
    assert answer and trace_id.startswith("tr-")
    marked = browser.find_elements(By.CSS_SELECTOR, ".citation .quote mark")
    assert marked and marked[0].text.lower() in answer.lower()
    screenshot(browser, "ui-answer.png", tmp_path)
    link = browser.find_element(By.CSS_SELECTOR, ".citation a.source-link")
    link.click()
    passage = browser.find_element(By.ID, "passage")
    assert passage.find_elements(By.TAG_NAME, "mark"), "the quote is highlighted in its passage"
    browser.back()

    browser.find_element(By.ID, "rate-bad").click()
    browser.find_element(By.ID, "correction").send_keys("in the 10th century")
    browser.find_element(By.ID, "user").send_keys("browser-test")
    browser.find_element(By.ID, "rate").click()
    assert "bad" in browser.find_element(By.ID, "rated").text

    ratings = [
        a
        for a in MlflowClient().get_trace(trace_id).info.assessments
        if a.name == "user_rating" and a.source.source_id == "browser-test"
    ]
    assert [a.value for a in ratings] == [False]
    log = QueryLog(settings.query_log)
    [row] = [r for r in log.read() if r["trace_id"] == trace_id]
    log.close()
    assert row["caller"] == "ui" and row["groups"] == ["public"] and row["feedback"] == "bad"

    browser.get(app_url + "/operator")
    table = browser.find_element(By.ID, "recent").text
    assert trace_id in table and "in the 10th century" in table
    screenshot(browser, "ui-operator.png", tmp_path)
    trace_link = browser.find_element(By.CSS_SELECTOR, f"a[href*='{trace_id}']")
    assert trace_link.get_attribute("href").startswith(os.environ["MLFLOW_TRACKING_URI"])
    # for the docs: the trace in the MLflow UI (basic-auth credentials in the URL)
    browser.get(with_credentials(trace_link.get_attribute("href")))
    time.sleep(8)  # the MLflow UI renders client-side
    screenshot(browser, "mlflow-trace.png", tmp_path)


def test_the_page_refuses_groups_it_does_not_offer(app_url):
    import httpx

    foreign = httpx.post(
        app_url + "/api/ask", json={"question": QUESTION, "groups": ["admins"]}, timeout=60
    )
    assert foreign.status_code == 403 and "admins" in foreign.json()["error"]
    none = httpx.post(app_url + "/api/ask", json={"question": QUESTION, "groups": []}, timeout=60)
    assert none.status_code == 400
    form = httpx.post(app_url + "/ask", data={"question": QUESTION}, timeout=60)
    assert form.status_code == 400 and "pick at least one group" in form.text
    bad = httpx.post(
        app_url + "/api/feedback", json={"trace_id": "tr-" + "0" * 32, "rating": "meh"}
    )
    assert bad.status_code == 400
    unknown = httpx.post(
        app_url + "/api/feedback", json={"trace_id": "tr-" + "0" * 32, "rating": "good"}
    )
    assert unknown.status_code == 404, unknown.text
