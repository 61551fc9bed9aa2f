"""The status page as a person sees it: the real exporter, real Kamailios, and Debian's headless
Chromium driven by chromedriver (selenium).

One Kamailio stays up; a second one answers a probe and is then stopped, so that its target is
down with a last success; a third listed target is never probed; an address allowed by a rule
is probed ad hoc; requests with a script as their target and with no target are refused. The
page is read at desktop and phone widths: the rows and what they say, the failure's reason, the
refused target shown as text (no script in the page, no dialog), the log behind a link, and
screenshots that must show the page (saved under the test's tmp directory).
"""

from __future__ import annotations

import base64
import io
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import ExporterProcess, require_tool
from kamailio_harness import KamailioInstance, free_ports
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.real

CHROMIUM_HINT = "apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
SCRIPT_TARGET = "<script>alert(1)</script>"
UTC_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
AGE = r"\(\d+ s ago\)"
PHONE = (390, 844)
DESKTOP = (1280, 900)


@dataclass
class Scene:
    exporter: ExporterProcess
    browser: webdriver.Chrome
    artifacts: Path
    up_address: str
    ad_hoc: str


def _chromium(workdir: Path) -> webdriver.Chrome:
    chromium = require_tool("chromium", CHROMIUM_HINT)
    chromedriver = require_tool("chromedriver", CHROMIUM_HINT)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'profile'}")
    (port,) = free_ports("tcp")
    service = Service(chromedriver, port=port, log_output=str(workdir / "chromedriver.log"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(20)
    return browser


@pytest.fixture(scope="module")
def scene(kamailio: KamailioInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    workdir = tmp_path_factory.mktemp("status")
    flapping = KamailioInstance(tmp_path_factory.mktemp("kamailio-flap"))
    flapping.start()
    try:
        (never,) = free_ports("tcp")
        config = workdir / "targets.toml"
        config.write_text(f"""
[[targets]]
name = "sbc-fra-1"
address = "{kamailio.tcp}"

[[targets]]
name = "sbc-fra-2"
address = "{flapping.tcp}"

[[targets]]
name = "sbc-ber-1"
address = "tcp:127.0.0.1:{never}"

[[allow]]
address = "unix:{kamailio.unix_path.parent}/*"
""")
        exporter = ExporterProcess(config)
        try:
            for target in ("sbc-fra-1", "sbc-fra-2", kamailio.unix):
                status, _, body = exporter.get("/probe", target=target)
                assert status == 200
                assert "kamailio_up 1" in body, (target, body[-2000:])
            flapping.stop()
            status, _, body = exporter.get("/probe", target="sbc-fra-2")
            assert "kamailio_up 0" in body
            assert exporter.get("/probe", target=SCRIPT_TARGET)[0] == 403
            assert exporter.get("/probe")[0] == 400
            browser = _chromium(workdir)
            try:
                yield Scene(exporter, browser, workdir, kamailio.tcp, kamailio.unix)
            finally:
                browser.quit()
        finally:
            exporter.stop()
    finally:
        flapping.stop()


def _open(scene: Scene, size: tuple[int, int], mobile: bool) -> None:
    width, height = size
    scene.browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    scene.browser.get(scene.exporter.url + "/")


def _rows(scene: Scene, table_id: str) -> list[WebElement]:
    return scene.browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")


def _row_of(scene: Scene, table_id: str, text: str) -> WebElement:
    rows = [row for row in _rows(scene, table_id) if text in row.text]
    assert len(rows) == 1, (text, [row.text for row in _rows(scene, table_id)])
    return rows[0]


def _cell(row: WebElement, label: str) -> str:
    text: str = row.find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]').text
    return text


def _screenshot(scene: Scene, name: str) -> Image.Image:
    """A full-page screenshot, saved as an artifact, and checked for showing a page."""
    shot: dict[str, Any] = scene.browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )

    png = base64.b64decode(shot["data"])
    (scene.artifacts / f"{name}.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None
    most = max(count for count, _ in colors)
    # Not blank: the most common colour (the background) covers far from all of it.
    assert most < 0.9 * image.width * image.height, name
    assert len(colors) > 50, name  # text, badges and borders, antialiased
    return image


def _mean_tint(element: WebElement) -> tuple[float, float, float]:
    """The mean colour of an element's pixels that are not white (its fill and its text)."""
    image = Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None
    # An RGB image's colours are (r, g, b) tuples.
    tinted = [(count, rgb) for count, rgb in colors if isinstance(rgb, tuple) and min(rgb) < 250]
    total = sum(count for count, _ in tinted)
    assert total > 0, "an element without colour"
    r, g, b = (sum(count * rgb[i] for count, rgb in tinted) / total for i in range(3))
    return r, g, b


def test_desktop_shows_each_target_state_time_and_reason(scene: Scene) -> None:
    _open(scene, DESKTOP, mobile=False)
    browser = scene.browser
    assert browser.title == "Kamailio Probe Exporter: 1 down"
    rows = _rows(scene, "target-list")
    assert len(rows) == 4
    assert "sbc-fra-2" in rows[0].text  # down first

    down = _row_of(scene, "target-list", "sbc-fra-2")
    assert _cell(down, "State").startswith("DOWN")
    assert re.fullmatch(rf"{UTC_TIME} {AGE}\ntook \d+\.\d ms", _cell(down, "Last probe"))
    assert re.fullmatch(rf"{UTC_TIME} {AGE}", _cell(down, "Last success"))
    failure = _cell(down, "Last failure")
    assert failure.startswith("connect ")
    assert "ECONNREFUSED" in failure
    assert re.search(rf"\n{UTC_TIME} {AGE}$", failure)

    up = _row_of(scene, "target-list", "sbc-fra-1")
    assert _cell(up, "State").startswith("UP")
    assert _cell(up, "Target") == f"sbc-fra-1\n{scene.up_address}"
    assert _cell(up, "Last failure") == "none"
    never = _row_of(scene, "target-list", "sbc-ber-1")
    assert _cell(never, "State") == "NO DATA"
    assert _cell(never, "Last probe") == "not probed yet"
    ad_hoc = _row_of(scene, "target-list", scene.ad_hoc)
    assert _cell(ad_hoc, "Target") == f"{scene.ad_hoc}\nallowed by a rule"
    assert _cell(ad_hoc, "State").startswith("UP")
    tiles = browser.find_element(By.CSS_SELECTOR, ".tiles").text.split("\n")
    assert tiles == ["2", "up", "1", "down", "1", "not probed yet", "2", "refused requests"]

    # Recent probes: newest first, with time, result, duration and reason.
    probes = _rows(scene, "probe-list")
    assert len(probes) == 4
    assert _cell(probes[0], "Target") == "sbc-fra-2"
    assert _cell(probes[0], "Result") == "FAILURE connect"
    assert "ECONNREFUSED" in _cell(probes[0], "Reason")
    assert re.fullmatch(rf"{UTC_TIME} {AGE}", _cell(probes[0], "Time"))
    assert re.fullmatch(r"\d+\.\d ms", _cell(probes[0], "Duration"))
    assert _cell(probes[1], "Result") == "SUCCESS"
    assert _cell(probes[1], "Reason") == ""

    # The page's table layout fits the window: nothing to scroll sideways.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    assert (
        browser.execute_script(
            "return getComputedStyle(document.querySelector('#target-list thead')).display"
        )
        == "table-header-group"
    )
    image = _screenshot(scene, "status-desktop")
    assert DESKTOP[0] - 20 < image.width <= DESKTOP[0]  # less a scroll bar, if any
    assert image.height >= DESKTOP[1] // 2
    # The badges are coloured as their state: red for down, green for up.
    red = _mean_tint(down.find_element(By.CSS_SELECTOR, ".badge"))
    green = _mean_tint(up.find_element(By.CSS_SELECTOR, ".badge"))
    assert red[0] > red[1] + 25, red
    assert green[1] > green[0] + 25, green


def test_the_last_probe_log_is_one_click_away(scene: Scene) -> None:
    _open(scene, DESKTOP, mobile=False)
    down = _row_of(scene, "target-list", "sbc-fra-2")
    link = down.find_element(By.LINK_TEXT, "last probe")
    href = link.get_attribute("href")
    assert href is not None
    assert urllib.parse.urlsplit(href).path == "/logs"
    link.click()
    text = scene.browser.find_element(By.TAG_NAME, "body").text
    assert "probe failed at stage connect" in text
    assert "kamailio_up 0" in text
    assert "target: sbc-fra-2" in text
    # Its last success is linked too, as a different probe.
    _open(scene, DESKTOP, mobile=False)
    down = _row_of(scene, "target-list", "sbc-fra-2")
    assert down.find_elements(By.LINK_TEXT, "last failure") == []  # the last probe is it
    up = _row_of(scene, "target-list", "sbc-fra-1")
    up.find_element(By.LINK_TEXT, "last probe").click()
    assert "kamailio_up 1" in scene.browser.find_element(By.TAG_NAME, "body").text


def test_a_refused_script_target_is_text_and_never_runs(scene: Scene) -> None:
    _open(scene, DESKTOP, mobile=False)
    browser = scene.browser
    refused = _row_of(scene, "refusal-list", "403")
    assert _cell(refused, "Target") == SCRIPT_TARGET  # shown as the client sent it
    assert _cell(refused, "Why").startswith('target "<script>alert(1)</script>": ')
    missing = _row_of(scene, "refusal-list", "400")
    assert _cell(missing, "Target") == "none"
    assert _cell(missing, "Why") == "'target' parameter is missing"
    counts = browser.find_element(By.CSS_SELECTOR, "#refused + p").text
    assert "403 not allowed: 1, 400 bad request: 1, 503 overloaded: 0" in counts
    assert browser.execute_script("return document.scripts.length") == 0
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert "<script" not in browser.page_source.replace("&lt;script", "")


def test_phone_width_shows_rows_as_cards(scene: Scene) -> None:
    _open(scene, PHONE, mobile=True)
    browser = scene.browser
    assert browser.execute_script("return window.innerWidth") == PHONE[0]
    # No sideways scrolling; the header row is hidden and every cell is labelled instead.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    assert (
        browser.execute_script(
            "return getComputedStyle(document.querySelector('#target-list thead')).display"
        )
        == "none"
    )
    label = browser.execute_script(
        "return getComputedStyle("
        "document.querySelector('#target-list td[data-label=State]'), '::before').content"
    )
    assert label == '"State"'
    # Each card's cells stack: the label and value side by side, one cell under the other.
    down = _row_of(scene, "target-list", "sbc-fra-2")
    assert down.text.startswith("DOWN\nfor ")
    cells = down.find_elements(By.CSS_SELECTOR, "td")
    tops = [cell.location["y"] for cell in cells]
    assert tops == sorted(tops)
    assert len(set(tops)) == len(cells)
    assert all(cell.size["width"] > PHONE[0] * 0.8 for cell in cells)
    assert "connect " in _cell(down, "Last failure")
    refused = _row_of(scene, "refusal-list", "403")
    assert _cell(refused, "Target") == SCRIPT_TARGET
    image = _screenshot(scene, "status-phone")
    assert image.width == PHONE[0]
    assert image.height > PHONE[1]  # the cards run below the first screen
