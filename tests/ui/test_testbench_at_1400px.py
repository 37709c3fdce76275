"""The testbench as a developer meets it in a 1400x900 browser window (real headless Chromium, a
real `voicegraph serve` of the streaming graph, the OpenAI-compatible stub on loopback): the inject
status follows a spoken turn to its end, the reply players know their length before they are
played, the sessions table fits its column and the graph drawings fill their tabs' width.
"""

from __future__ import annotations

import asyncio

import pytest
from selenium.webdriver.common.by import By

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_with_dashboard
from tests.ui.browser import chromium, wait_until

pytestmark = pytest.mark.timeout(240)

WIDTH, HEIGHT = 1400, 900
MIN_SCALE = 0.5
"""The drawings' smallest scale (rendered width over Mermaid's own): 16 px labels at 8 px and up."""
PLAYERS_KNOW_THEIR_LENGTH = """
return [...document.querySelectorAll('[data-testid=replies] audio')]
  .map(a => [a.duration, a.paused, a.currentTime, a.getAttribute('src')])"""
DRAWING = """
const svg = document.querySelector(arguments[0] + ' svg');
const box = svg.getBoundingClientRect();
const panel = svg.closest('.q-tab-panel').getBoundingClientRect();
return {width: box.width, panel: panel.width, natural: svg.viewBox.baseVal.width}"""


@pytest.fixture
def stub():
    s = OpenAIStub().start_in_thread()
    yield s
    s.stop_thread()


def text_of(driver, testid: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def no_sideways_scroll(driver) -> None:
    page = driver.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page[0] <= page[1], f"the page scrolls sideways: {page}"


def test_a_streamed_spoken_turn_settles_and_the_page_fits_1400px(tmp_path, stub) -> None:
    # heard as a long sentence: the reply's first piece plays ~6 s, ample for a page that polls
    stub.transcript = "tell me a long story about a lighthouse keeper and the storm that came at night"
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test"}
    fail = tmp_path / "fail.png"
    with serve_with_dashboard(env, "--graph", "streaming") as (url, ui_url), chromium() as d:
        d.set_window_size(WIDTH, HEIGHT)
        assert d.execute_script("return window.innerWidth") == WIDTH
        d.get(ui_url)
        wait_until(lambda: "Inject" in d.page_source, 30, "the dashboard page", d, fail)

        async def other_client() -> None:  # a row with a long id and label beside the testbench's
            c = await Recorder().connect(url, auth={"label": "a-frontend-with-a-rather-long-client-label"})
            try:
                await c.emit("text-message", "Hello from the other client.")
                await c.wait("ai-response", timeout=30)
            finally:
                await c.close()

        asyncio.run(other_client())

        # 1. a spoken turn answered by a streamed reply: the status follows it to "answered"
        box = d.find_element(By.CSS_SELECTOR, "input[data-testid=sentence], [data-testid=sentence] input")
        box.send_keys("Tell me a story. Make it two sentences.")
        d.find_element(By.CSS_SELECTOR, "[data-testid=speak]").click()
        seen: list[str] = []

        def status() -> str:
            shown = text_of(d, "inject-status")
            if not seen or seen[-1] != shown:
                seen.append(shown)
            return shown

        wait_until(lambda: "sending" in status(), 30, "the injection under way", d, fail)
        wait_until(lambda: status() and len(d.find_elements(By.CSS_SELECTOR, "[data-testid=piece]")) >= 2,
                   60, "a streamed reply's pieces", d, fail)
        wait_until(lambda: status().endswith("· answered"), 60, "the status settled after the reply", d, fail)
        final = seen[-1]
        assert "sent" in final and "sending" not in final and "speaking" not in final, seen
        assert any(s.endswith("· speaking") for s in seen), seen  # it followed the reply while it played
        assert text_of(d, "state") in ("idle", "listening")
        d.save_screenshot(str(tmp_path / "1-answered.png"))

        # 2. the reply players know their length without being played
        players = wait_until(lambda: (p := d.execute_script(PLAYERS_KNOW_THEIR_LENGTH))
                             and all(0 < dur < 1e9 for dur, _, _, _ in p) and p,
                             30, "every reply player's duration", d, fail)
        assert len(players) >= 3, players  # the whole reply and at least two pieces
        assert all(paused and now == 0 for _, paused, now, _ in players), players

        # 3. the sessions table fits its column; the page does not scroll sideways
        table = d.execute_script("const m = document.querySelector('[data-testid=sessions] .q-table__middle');"
                                 "return [m.scrollWidth, m.clientWidth]")
        assert table[0] <= table[1], f"the sessions table scrolls sideways: {table}"
        cut = d.execute_script("return [...document.querySelectorAll('[data-testid=sessions] th')]"
                               ".filter(th => th.scrollWidth > th.clientWidth).map(th => th.textContent)")
        assert cut == [], f"column headers cut short: {cut}"
        rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "[data-testid=sessions] tbody tr")]
        assert len(rows) == 2 and any("testbench" in r for r in rows), rows
        no_sideways_scroll(d)

        # 4. the drawings fill their tab's width at a readable scale
        for tab, drawing in (("graph-tab", "[data-testid=graph-drawing]"), ("tap-tab", "[data-testid=tap-graph]")):
            d.find_element(By.CSS_SELECTOR, f"[data-testid={tab}]").click()
            if tab == "tap-tab":
                wait_until(lambda: "turns: turn_taker" in text_of(d, "tap-graph"), 20, "the tapped graph", d, fail)
            size = wait_until(lambda dr=drawing: (s := d.execute_script(DRAWING, dr)) and s["width"] > 0 and s,
                              20, f"the drawing in {tab}", d, fail)
            assert size["width"] >= 0.9 * size["panel"], size
            assert size["width"] / size["natural"] >= MIN_SCALE, size
            no_sideways_scroll(d)
            d.save_screenshot(str(tmp_path / f"2-{tab}.png"))
