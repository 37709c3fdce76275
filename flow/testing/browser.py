"""A headless Chromium tab as a plain process (Debian `chromium`), for the bench's "dashboard open" row.

No Selenium here: the bench ships with the package, and only needs a real browser to hold a page
open. The UI tests drive Chromium through Selenium from `tests/ui/browser.py`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

CHROMIUM_FLAGS = ("--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--window-size=1400,1000")


def find_chromium() -> str | None:
    """The Chromium executable, or None where it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def open_tab(url: str) -> subprocess.Popen | None:
    """A headless Chromium showing `url` until `terminate()`d; None without Chromium."""
    browser = find_chromium()
    if browser is None:
        return None
    profile = tempfile.mkdtemp(prefix="voicegraph-chromium-")
    return subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
