"""The Recordings tab in a real headless Chromium: a session recorded by a real `voicegraph serve
--record` process is listed, opens as a timeline with its events, and replays through the
current graph with both runs side by side."""

from __future__ import annotations

import asyncio

import pytest
from selenium.webdriver.common.by import By

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_with_dashboard
from flow.testing.speech import MIME, encode, speak_espeak
from tests.ui.browser import chromium, wait_until

pytestmark = pytest.mark.timeout(240)


async def a_session(url: str) -> str:
    """A voice turn and a text turn from a real client; its session id."""
    c = await Recorder().connect(url, {"label": "browser-test"})
    try:
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        await c.stream(encode(speak_espeak("what is the weather today"), "webm"), 800)
        await c.emit("stop-recording")
        await c.wait("ai-response", timeout=60)
        await c.emit("text-message", "and tomorrow")
        await c.wait("ai-response", count=2, timeout=60)
        return c.sio.get_sid()
    finally:
        await c.close()


def test_recordings_tab_lists_opens_and_replays(tmp_path) -> None:
    stub = OpenAIStub(transcript="what is the weather today").start_in_thread()
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test"}
    fail = tmp_path / "fail.png"
    try:
        with serve_with_dashboard(env, "--record", str(tmp_path / "rec")) as (url, ui_url), chromium() as d:
            sid = asyncio.run(a_session(url))
            d.get(ui_url)
            wait_until(lambda: "Recordings" in d.page_source, 30, "the dashboard page", d, fail)
            d.find_element(By.CSS_SELECTOR, "[data-testid=recordings-tab]").click()
            opener = f"[data-testid=open-{sid}]"

            def listed():
                d.find_element(By.CSS_SELECTOR, "[data-testid=recordings-refresh]").click()
                return d.find_elements(By.CSS_SELECTOR, opener)

            wait_until(listed, 30, "the session in the list", d, fail)
            d.find_element(By.CSS_SELECTOR, opener).click()
            title = wait_until(lambda: d.find_element(By.CSS_SELECTOR, "[data-testid=recording-title]").text,
                               30, "the recording opened", d, fail)
            assert "graph default" in title
            wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "[data-testid=recording-timeline] canvas"),
                       30, "the timeline drawn", d, fail)
            events = d.find_element(By.CSS_SELECTOR, "[data-testid=recording-events]").text
            assert "start-recording" in events and "speech-result" in events and "and tomorrow" in events
            d.save_screenshot(str(tmp_path / "1-opened.png"))

            d.find_element(By.CSS_SELECTOR, "[data-testid=replay]").click()
            status = wait_until(lambda: (t := d.find_element(By.CSS_SELECTOR, "[data-testid=replay-status]").text)
                                and "replayed through" in t and t, 90, "the replay's verdict", d, fail)
            assert status == "replayed through default: the same", status
            table = d.find_element(By.CSS_SELECTOR, "[data-testid=replay-table]").text
            assert table.count("'what is the weather today'") >= 4  # transcript and turn, both runs
            assert "first_audio" in table
            replay_events = d.find_element(By.CSS_SELECTOR, "[data-testid=events-replay]").text
            assert "message-received" in replay_events and "and tomorrow" in replay_events
            d.save_screenshot(str(tmp_path / "2-replayed.png"))
    finally:
        stub.stop_thread()
