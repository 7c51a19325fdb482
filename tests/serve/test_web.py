"""The web page at `/`: served without a key and self-contained (TestClient), and driven in
headless Chromium against a live server: sign in, a finished job's loss curve and events, the
chat playground streaming a fine-tuned model's answer, and a second key seeing none of it."""

from __future__ import annotations

import re
import shutil

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import wait_for
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings

FINAL = {"succeeded", "failed", "cancelled"}
HOSTILE_NAME = "<img src=x onerror=document.body.dataset.pwned=1>.jsonl"


@pytest.fixture
def page_client(tmp_path):
    settings = ServeSettings(tmp_path, {"k1": "alpha"}, docs=True)
    with TestClient(create_app(settings, SQLiteStore(tmp_path / "db"))) as client:
        yield client


def test_page_is_served_without_a_key_and_loads_nothing_from_elsewhere(page_client):
    html = page_client.get("/")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in html.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]*)"', html.text)
    assert "/static/app.js" in refs and "/static/app.css" in refs
    assert not [r for r in refs if "//" in r], refs  # no external (or protocol-relative) URL
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = page_client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        # The only URL in either is the SVG namespace name, which is never fetched.
        assert set(re.findall(r"https?://[^\s\"'`)]*", r.text)) <= {"http://www.w3.org/2000/svg"}
    js = page_client.get("/static/app.js").text
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js
    for path in ("/static/index.html", "/static/__init__.py", "/static/..%2Fapp.py", "/static/x"):
        r = page_client.get(path)
        assert r.status_code == 404 and "Invalid URL" in r.json()["error"]["message"]
    assert page_client.get("/v1/models").status_code == 401  # the API still needs a key
    schema = page_client.get("/openapi.json").json()
    assert all(p.startswith("/v1/") for p in schema["paths"]), list(schema["paths"])


# ---- in a real browser ------------------------------------------------------------------------


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium or chromedriver is not installed (make test installs both)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def _wait(driver, predicate, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: predicate(d))


def _sign_in(driver, base: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/#/jobs")
    field = _wait(driver, lambda d: d.find_element(By.ID, "key").is_displayed()
                  and d.find_element(By.ID, "key"))
    field.send_keys(key)
    driver.find_element(By.ID, "signin").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs[data-loaded]"))


def test_browser_job_curve_chat_and_isolation(browser, server_factory, service_data):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server = server_factory().start()
    base = f"http://127.0.0.1:{server.port}"
    client = server.client("key-alpha")
    train, val = (client.files.create(file=(name, (service_data / name).read_bytes()),
                                      purpose="fine-tune")
                  for name in ("train.jsonl", "validation.jsonl"))
    client.files.create(file=(HOSTILE_NAME, b'{"messages": []}\n'), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(server.model), training_file=train.id, validation_file=val.id, suffix="web",
        method={"type": "supervised", "supervised": {
            "hyperparameters": {"n_epochs": 2, "batch_size": 2}}})
    job = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in FINAL and j)
    assert job.status == "succeeded", (job.error, server.log()[-2000:])

    # Alpha: the job is listed; its page draws the curve and shows the events.
    _sign_in(browser, base, "key-alpha")
    row = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                   f'tr[data-job-id="{job.id}"]'))
    assert "succeeded" in row[0].text
    row[0].find_element(By.TAG_NAME, "a").click()
    chart = _wait(browser, lambda d: (c := d.find_element(By.ID, "loss-chart"))
                  .get_attribute("data-train-points") not in ("0", None) and c)
    train_line = chart.find_element(By.CSS_SELECTOR, "polyline.train")
    assert len(train_line.get_attribute("points").split()) >= 2
    assert int(chart.get_attribute("data-train-points")) >= 2
    events = _wait(browser, lambda d: "successfully completed" in
                   d.find_element(By.ID, "events").text and d.find_element(By.ID, "events"))
    assert "Checkpoint created at step" in events.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#checkpoints tbody tr")) == 2
    assert browser.find_elements(By.CSS_SELECTOR,
                                 f'#result-files [data-file-id="{job.result_files[0]}"]')

    # A hostile file name is shown as text, not turned into markup.
    browser.get(f"{base}/#/new")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#files[data-loaded]"))
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#files td.filename")]
    assert HOSTILE_NAME in names
    assert not browser.find_elements(By.CSS_SELECTOR, "#files img")
    assert browser.execute_script("return document.body.dataset.pwned") is None

    # The chat playground streams an answer from the fine-tuned model.
    browser.get(f"{base}/#/models")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-model[data-loaded]"))
    Select(browser.find_element(By.ID, "chat-model")).select_by_value(job.fine_tuned_model)
    tokens = browser.find_element(By.ID, "max-tokens")
    tokens.clear()
    tokens.send_keys("8")
    browser.find_element(By.ID, "chat-input").send_keys("my bill doubled")
    browser.find_element(By.ID, "chat-send").click()
    answer = _wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, ".msg.assistant[data-done]"))[0]
    assert answer.get_attribute("data-finish") in ("stop", "length"), answer.text
    assert answer.find_element(By.CLASS_NAME, "text").text.strip()

    # A file uploaded and a job started from the page; its Cancel button stops the job.
    browser.get(f"{base}/#/new")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#files[data-loaded]"))
    browser.find_element(By.ID, "upload-file").send_keys(str(service_data / "train.jsonl"))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button").click()
    _wait(browser, lambda d: "Uploaded train.jsonl" in d.find_element(By.ID, "upload-note").text)
    browser.find_element(By.ID, "n-epochs").send_keys("3")
    Select(browser.find_element(By.ID, "method")).select_by_value("supervised")
    browser.find_element(By.ID, "create-job").click()
    _wait(browser, lambda d: "#/jobs/ftjob-" in d.current_url)
    created = client.fine_tuning.jobs.retrieve(browser.current_url.rsplit("/", 1)[1])
    assert created.model == str(server.model) and created.hyperparameters.n_epochs == 3
    assert created.method.type == "supervised"
    assert created.training_file not in (train.id, val.id)  # the file uploaded from the page
    _wait(browser, lambda d: (b := d.find_element(By.ID, "job-cancel")).is_enabled() and b).click()
    _wait(browser, lambda d: d.find_element(By.ID, "view").get_attribute("data-status")
          == "cancelled")
    assert client.fine_tuning.jobs.retrieve(created.id).status == "cancelled"

    # Beta signs in on the same page: none of alpha's jobs.
    browser.find_element(By.ID, "signout").click()
    _sign_in(browser, base, "key-beta")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-job-id]")
    assert job.id not in browser.find_element(By.ID, "view").text
    browser.get(f"{base}/#/jobs/{job.id}")
    _wait(browser, lambda d: "No such fine_tuning_job" in d.find_element(By.ID, "flash").text)
