"""One dashboard, two workers sharing a real redis-server, in a real headless Chromium: the
sessions table lists both workers' sessions (named by worker), Apply reaches both, and a killed
worker's sessions are shown closed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest
from selenium.webdriver.common.by import By

from flow.testing.client import Recorder
from flow.testing.cluster import redis_server
from flow.testing.servers import served
from tests.ui.browser import chromium, wait_until

pytestmark = pytest.mark.timeout(180)


def _rows(d) -> list[str]:
    return [r.text for r in d.find_elements(By.CSS_SELECTOR, "[data-testid=sessions] tbody tr")]


async def test_the_dashboard_lists_every_workers_sessions_and_apply_reaches_all(tmp_path) -> None:
    with redis_server() as redis_url, contextlib.ExitStack() as stack:
        env = {"VOICEGRAPH_REDIS_URL": redis_url, "VOICEGRAPH_STORE": redis_url, "VOICEGRAPH_PRELOAD": "0"}
        w1 = stack.enter_context(served({**env, "VOICEGRAPH_WORKER": "w1"}, "--ui-port", "0", with_ui=True))
        w2 = stack.enter_context(served({**env, "VOICEGRAPH_WORKER": "w2"}, "--no-ui"))
        clients = [await Recorder().connect(w.url, {"label": f"client-of-{w.url[-5:]}"}) for w in (w1, w2)]

        def drive() -> None:  # in a thread: the clients' loop keeps answering pings meanwhile
            with chromium() as d:
                d.get(w1.ui_url)
                shot = tmp_path / "fail.png"
                wait_until(lambda: len(_rows(d)) >= 2, 30, "two session rows", d, shot)
                rows = _rows(d)
                for w, name in ((w1, "w1"), (w2, "w2")):
                    assert any(f"client-of-{w.url[-5:]}" in r and r.rstrip().endswith(name) for r in rows), rows
                d.save_screenshot(str(tmp_path / "sessions.png"))

                d.find_element(By.CSS_SELECTOR, "[data-testid=graph-tab]").click()
                wait_until(lambda: d.find_element(By.CSS_SELECTOR, "[data-testid=apply]").is_displayed(), 20,
                           "the Apply button", d, shot)
                d.find_element(By.CSS_SELECTOR, "[data-testid=apply]").click()  # the served graph, unchanged
                applied = wait_until(lambda: (t := d.find_element(By.CSS_SELECTOR, "[data-testid=applied]").text)
                                     and "w1" in t and "w2" in t and t, 20, "both workers' verdicts", d, shot)
                assert applied.count("✓") == 2 and "✗" not in applied, applied
                d.save_screenshot(str(tmp_path / "applied.png"))

                # w2 is killed: no `close` will come from it; its session is shown closed once its
                # figures stop (5 s), w1's stays live
                os.kill(w2.pid, signal.SIGKILL)
                d.find_element(By.CSS_SELECTOR, "[data-testid=sessions-tab]").click()
                wait_until(lambda: any(r.rstrip().endswith("w2") and "closed" in r for r in _rows(d)), 20,
                           "w2's session shown closed", d, shot)
                assert any(r.rstrip().endswith("w1") and "closed" not in r for r in _rows(d)), _rows(d)

        try:
            await asyncio.to_thread(drive)
        finally:
            for c in clients:
                await c.close()
