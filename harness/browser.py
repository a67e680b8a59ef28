"""Debian's headless Chromium driven by Selenium through Debian's chromedriver: for the
console's browser tests and the documentation's screenshots.

An explicit driver path: Selenium Manager never runs, nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "browser_missing",
    "chrome_options",
    "emulate_viewport",
    "start_chromium",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_missing() -> str | None:
    """Why no browser can run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"{' and '.join(missing)} not installed "
            "(apt-get install chromium chromium-driver; .ci/run does it)"
        )
    return None


def chrome_options(user_data_dir: Path, size: tuple[int, int], *extra: str) -> Options:
    """Headless Chromium that talks to nothing but the pages it is sent to; `extra`
    arguments added (e.g. --hide-scrollbars for screenshots)."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={size[0]},{size[1]}",
        f"--user-data-dir={user_data_dir}",
        *extra,
    ):
        options.add_argument(argument)
    return options


def start_chromium(user_data_dir: Path, size: tuple[int, int], *extra: str) -> WebDriver:
    """A headless Chromium with a window of `size`, its profile in `user_data_dir`."""
    options = chrome_options(user_data_dir, size, *extra)
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def emulate_viewport(driver: WebDriver, size: tuple[int, int], *, mobile: bool) -> None:
    """Lay pages out for a viewport of `size` CSS pixels (a phone with `mobile`), whatever
    the window's size (a headless window is at least 500 pixels wide)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile},
    )
