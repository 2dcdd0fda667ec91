"""The page in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium;
nothing is downloaded) opens a real ``backbonekit serve``, uploads an image, and checks what the page shows."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from serve.live import free_port, wait_until_up

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no chromium/chromedriver on this machine (Debian: apt-get "
                                                         "install chromium chromium-driver; .ci/run does)"),
    pytest.mark.usefixtures("one_thread"),
]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,900")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tiny_runs):
    """`backbonekit serve` on a free loopback port for each task, as a user starts it."""
    servers = {}
    for task in ("classify", "detect", "sequence"):
        port = free_port()
        command = [sys.executable, "-m", "backbonekit", "serve", "--checkpoint", str(tiny_runs[task] / "best.ckpt"),
                   "--port", str(port), "--score-threshold", "0.0", "--top-k", "3"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        servers[task] = (process, f"http://127.0.0.1:{port}")
    for process, url in servers.values():
        wait_until_up(process, url)
    yield {task: url for task, (_, url) in servers.items()}
    for process, _ in servers.values():
        process.terminate()
        process.wait(30)


def upload(browser, url: str, image: Path, done_selector: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda b: "classes" in b.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "file").send_keys(str(image))
    WebDriverWait(browser, 60).until(seen.presence_of_element_located((By.CSS_SELECTOR, done_selector)))
    return By


def test_the_page_shows_the_top_classes_and_the_explanation(browser, served, tiny_runs, tmp_path):
    image = sorted(tiny_runs["data"]["classify"].rglob("*.png"))[0]
    expected = requests.post(served["classify"] + "/v1/predict", files={"file": (image.name, image.read_bytes())},
                             timeout=30).json()["results"][0]["top"]
    By = upload(browser, served["classify"], image, "#bars .class-name")
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#bars .class-name")]
    assert names == [name for name, _ in expected]
    browser.find_element(By.ID, "explain").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#maps button")) == 3)
    assert browser.find_element(By.ID, "picture").get_attribute("src").startswith("data:image/png;base64,")
    assert browser.save_screenshot(str(tmp_path / "classify.png"))
    assert (tmp_path / "classify.png").stat().st_size > 5000


def test_the_page_draws_every_box_and_fits_a_phone(browser, served, tiny_runs, tmp_path):
    image = sorted(tiny_runs["data"]["detect"].rglob("*.png"))[0]
    expected = requests.post(served["detect"] + "/v1/predict", files={"file": (image.name, image.read_bytes())},
                             timeout=30).json()["results"][0]["detections"]
    By = upload(browser, served["detect"], image, "#box-count")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg#boxes rect.box")) == len(expected) > 0
    browser.set_window_size(390, 844)  # a phone's width: nothing scrolls sideways
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.save_screenshot(str(tmp_path / "detect-phone.png"))
    browser.set_window_size(1000, 900)


def test_the_page_lists_the_predicted_edits_in_order(browser, served, tiny_runs):
    image = sorted(tiny_runs["data"]["sequence"].rglob("*.jpg"))[0]
    row = requests.post(served["sequence"] + "/v1/predict", files={"file": (image.name, image.read_bytes())},
                        timeout=30).json()["results"][0]
    names = requests.get(served["sequence"] + "/v1/model", timeout=30).json()["classes"]
    By = upload(browser, served["sequence"], image, "#result .class-name")
    assert browser.find_element(By.CSS_SELECTOR, "#result .class-name").text == row["name"]
    edits = [names[i] for i in row["label"][:row["label"].index(0) if 0 in row["label"] else None]]
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#steps .edit")] == edits


def test_the_controls_are_reached_with_the_keyboard(browser, served):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(served["classify"] + "/")
    browser.find_element(By.TAG_NAME, "h1").click()
    reached = []
    for _ in range(3):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(browser.switch_to.active_element.get_attribute("id"))
    assert reached == ["file", "explain", "key"]
