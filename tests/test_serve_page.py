"""The web page of ``nmt serve`` in headless Chromium: type a sentence, click Translate, find
the translation and its attention heat map on the page.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them where apt can)
and selenium (the dev extra); skipped without them. Set ``NMT_PAGE_SCREENSHOT=PATH`` to keep
a screenshot (docs/serve_page.png is made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve_server import running_server
from tiny_checkpoint import PAIRS, tiny_checkpoint

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="needs chromium and chromedriver"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1000,1400",
)


@pytest.fixture(scope="module")
def server():
    zh_en, en_zh = tiny_checkpoint("transformer"), tiny_checkpoint("transformer", "en-zh")
    with running_server("--checkpoint", str(zh_en), "--checkpoint", str(en_zh)) as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_typing_a_sentence_and_clicking_translate_shows_it_with_a_heat_map(
    server, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    source, target = PAIRS[0]
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pair option"))
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#pair option")]
    assert options == ["Chinese → English", "English → Chinese"]
    browser.find_element(By.ID, "source").send_keys(source)
    browser.find_element(By.ID, "translate").click()
    wait.until(lambda d: target in d.find_element(By.ID, "result").text)

    table = browser.find_element(By.CSS_SELECTOR, "#attention table.heatmap")
    columns = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")][1:]
    rows = [th.text for th in table.find_elements(By.CSS_SELECTOR, "tbody th")]
    assert columns[-1] == "</s>" and "公园" in "".join(columns)  # the browser shows Chinese
    assert rows[-1] == "</s>" and len(rows) > 5
    cells = table.find_elements(By.CSS_SELECTOR, "tbody td")
    assert len(cells) == len(rows) * len(columns)

    screenshot = tmp_path / "page.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("NMT_PAGE_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["NMT_PAGE_SCREENSHOT"])

    # The other direction, after swapping: the translation becomes the source.
    browser.find_element(By.ID, "swap").click()
    assert browser.find_element(By.ID, "source").get_attribute("value") == target
    browser.find_element(By.ID, "translate").click()
    wait.until(lambda d: "公园" in d.find_element(By.ID, "result").text)


def test_server_errors_are_shown_on_the_page(server, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pair option"))
    browser.find_element(By.ID, "translate").click()  # nothing typed
    assert "Type a sentence first." in browser.find_element(By.ID, "status").text
    browser.find_element(By.ID, "source").send_keys("我" * 1500)  # over the sentence limit
    browser.find_element(By.ID, "translate").click()
    wait.until(lambda d: "per sentence" in d.find_element(By.ID, "status").text)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
