"""The Prefect UI seen as a person sees it: headless Chromium (Debian's) driven by Selenium.

A Prefect server with its UI has run a small campaign and holds the scheduled deployment (the
``live_lab`` fixture, on PostgreSQL where it can be started); the browser then opens the flow run,
its artifacts (the cases table, the markdown report with the learning-curve image) and the deployment
with its schedule, checks what is visible on each page, and saves a screenshot of each under
figures/ui/. Selenium is pointed at /usr/bin/chromedriver, so Selenium Manager downloads nothing.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from closedloop.lab.tables import significant
from tests.conftest import REPO
from tests.deployments.live_server import LiveLab

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "figures" / "ui"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,860")

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip("Chromium is absent (/usr/bin/chromium and /usr/bin/chromedriver; .ci/run installs them with "
                "`apt-get install -y chromium chromium-driver`)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")


@dataclass
class Lab:
    live: LiveLab
    browser: object

    @property
    def url(self) -> str:
        return self.live.server.url


@pytest.fixture(scope="module")
def lab(live_lab: LiveLab, tmp_path_factory) -> Iterator[Lab]:
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield Lab(live_lab, browser)
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(lab: Lab, path: str, *visible: str) -> str:
    """Load a UI page and wait until every string in ``visible`` is shown; return the page's text."""
    lab.browser.get(lab.url + path)
    return _wait_text(lab, path, *visible)


def _wait_text(lab: Lab, where: str, *visible: str) -> str:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def body() -> str:
        return lab.browser.find_element("tag name", "body").text

    try:
        WebDriverWait(lab.browser, 45, poll_frequency=0.25).until(lambda _: all(s in body() for s in visible))
    except TimeoutException:
        missing = [s for s in visible if s not in body()]
        pytest.fail(f"{where}: not shown after 45 s: {missing}\npage text:\n{body()[:2000]}")
    return body()


def _screenshot(lab: Lab, name: str) -> None:
    """Save the viewport as figures/ui/NAME.png, reduced to a 256-colour palette (a third of the bytes)."""
    import io

    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = Image.open(io.BytesIO(lab.browser.get_screenshot_as_png())).convert("RGB")
    assert shot.size[0] >= 1000, shot.size
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(SCREENSHOTS / f"{name}.png", optimize=True)


def test_flow_run_page_shows_completed_run_and_its_artifacts(lab: Lab):
    from selenium.webdriver.common.by import By

    text = _open(lab, f"/runs/flow-run/{lab.live.run['id']}", lab.live.run["name"], "Completed", "Task Runs")
    assert "campaign" in text
    _screenshot(lab, "flow_run")
    lab.browser.find_element(By.XPATH, "//*[contains(@class, 'p-tab')][normalize-space()='Artifacts']").click()
    # the task runs' artifacts sit in a virtual scroller that renders once scrolled into view, as a person would
    scroller = lab.browser.find_element(By.CSS_SELECTOR, "#artifacts-content .p-virtual-scroller")
    lab.browser.execute_script("arguments[0].scrollIntoView()", scroller)
    table, report = lab.live.artifacts["table"]["key"], lab.live.artifacts["markdown"]["key"]
    assert table.startswith("smoke-") and table.endswith("-round-0-cases")  # the campaign and its directory
    _wait_text(lab, "flow run artifacts tab", "TABLE", table, "MARKDOWN", report)
    _screenshot(lab, "flow_run_artifacts")


def test_table_artifact_lists_the_ledger_cases(lab: Lab):
    table = lab.live.artifacts["table"]
    ids = lab.live.ledger["case_id"].tolist()
    text = _open(lab, f"/artifacts/artifact/{table['id']}", table["key"], "rel_l2", *ids)
    for rel in lab.live.ledger["rel_l2"]:
        assert str(significant(float(rel))) in text  # the validation errors, to 4 significant digits
    assert lab.live.run["name"] in text  # linked to its flow run
    _screenshot(lab, "artifact_cases_table")


def test_markdown_artifact_shows_the_learning_curve_image(lab: Lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = lab.live.artifacts["markdown"]
    _open(lab, f"/artifacts/artifact/{report['id']}", "smoke: round 0", "Mean validation relative L2")
    curve = lab.browser.find_element(By.CSS_SELECTOR, "img[alt='learning curve']")
    # decoded and laid out: a broken or empty image has natural width 0
    WebDriverWait(lab.browser, 20).until(lambda d: d.execute_script("return arguments[0].naturalWidth", curve) > 100)
    assert curve.size["width"] > 100 and curve.size["height"] > 100
    assert curve.get_attribute("src").startswith("data:image/png;base64,")
    lab.browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", curve)
    _screenshot(lab, "artifact_report")


def test_deployment_page_shows_its_schedule(lab: Lab):
    assert lab.live.deployment["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    # the schedule, and the next nightly run the scheduler has already planned from it
    text = _open(lab, f"/deployments/deployment/{lab.live.deployment['id']}", "smoke-nightly", "At 03:00 AM every day",
                 "Scheduled for")
    assert "src/closedloop/flows/campaign.py:campaign" in text
    _screenshot(lab, "deployment_schedule")


def test_progress_artifact_rises_to_done_while_an_async_campaign_runs(lab: Lab, tmp_path):
    """An asynchronous campaign runs against the server while the browser reloads its progress
    artifact's page: the percentage shown rises as cases finish, and ends at 100 %."""
    import re
    import subprocess
    import sys
    import time

    import httpx

    from closedloop.lab.store import CampaignStore
    from tests.flows.asynclab import tiny_async_config

    config = tiny_async_config(tmp_path / "config", max_cases=6, rounds=3)
    directory = tmp_path / "async-camp"
    key = CampaignStore(directory).artifact_key("smoke", "progress")
    code = f"from closedloop.flows.campaign import campaign; campaign({str(config)!r}, {str(directory)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=lab.live.server.client_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[float] = []
    try:
        with httpx.Client(base_url=lab.live.server.api, timeout=10) as http:
            deadline, found = time.monotonic() + 180, []
            while not found and time.monotonic() < deadline and proc.poll() is None:
                found = http.post("/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}}).json()
                time.sleep(0.5)
        assert found, f"no progress artifact {key}: {proc.communicate()[0][-3000:] if proc.poll() is not None else ''}"
        page = f"/artifacts/artifact/{found[0]['id']}"
        while True:
            ended = proc.poll() is not None
            text = _open(lab, page, key, "Progress:")  # the UI shows " Progress: NN% " (the value truncated)
            seen += [float(v) for v in re.findall(r"Progress: (\d+)%", text)[:1]]
            if ended or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    assert proc.returncode == 0, output[-3000:]
    assert seen and seen[-1] == 100, (seen, text[:1500])
    assert min(seen) < 100, seen  # seen before the end, then updated
    _screenshot(lab, "artifact_progress")
