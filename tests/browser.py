"""Headless Debian Chromium driven by Selenium, offline.

Selenium is given the system chromedriver explicitly and ``SE_OFFLINE=true``,
so selenium-manager never downloads a browser or a driver. The browser gets a
fresh profile and the flags that keep it from calling home.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WAIT_SECONDS = 20

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
]


def chromium_paths() -> tuple[str, str]:
    """The browser and driver binaries; skip (fail in CI) when they are not installed."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = "headless Chromium not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):  # CI=false is a local run
        pytest.fail(f"{reason}: CI must install it")
    pytest.skip(reason)


PHONE_WIDTH = 480  # narrower viewports are emulated as a touch phone (meta viewport honoured)


def start_chromium(*, width: int, height: int, profile_dir: Path | None = None):
    """A Selenium Chrome driver with a ``width`` x ``height`` CSS-pixel viewport, console logs captured."""
    browser, driver_path = chromium_paths()
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must not fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir or tempfile.mkdtemp(prefix='chromium-')}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    # The window size includes the browser's frame and cannot go below ~500 px;
    # emulate the viewport instead, exactly as DevTools' device mode does.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width <= PHONE_WIDTH},
    )
    return driver


def console_errors(driver) -> list[str]:
    """The browser console's errors since the last call (CSP violations, script errors, 404s)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_until(driver, condition: Callable[[Any], Any], message: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``condition(driver)`` every 0.1 s until it is truthy; fail with ``message`` after ``timeout``."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)
