"""A real headless Chromium (Debian `chromium` + `chromedriver`) driven by Selenium, for the UI tests."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flow.testing.browser import CHROMIUM_FLAGS as PLAIN_FLAGS

CHROMIUM_FLAGS = (*PLAIN_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables, or None where either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_paths() -> tuple[str, str]:
    """For tests: the executables, or fail (a Debian CI must have them) / skip elsewhere."""
    import pytest

    found = find_chromium()
    if found is None:
        if Path("/etc/debian_version").exists() and shutil.which("apt-get"):
            pytest.fail("chromium/chromedriver missing: the README test command installs them (apt-get)")
        pytest.skip("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    return found


def launch(browser: str, driver_path: str, *extra: str) -> Any:
    """A headless Chromium session (Selenium `webdriver.Chrome`) with `extra` flags; `quit()` it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, *extra):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@contextlib.contextmanager
def chromium(*extra: str) -> Iterator[Any]:
    driver = launch(*chromium_paths(), *extra)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
               driver: Any = None, shot: Path | None = None) -> Any:
    """Poll `check()` until truthy; on timeout save a screenshot (if given) and fail with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            if driver is not None and shot is not None:
                driver.save_screenshot(str(shot))
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
