"""The dashboard in a real headless Chromium, served by a real `voicegraph serve` process.

Graph `local_llm`: pocketsphinx and piper offline, the LLM at an OpenAI-compatible stub on
loopback (so a reply can be made slow on purpose). Screenshots of each state go to the test's
temp dir.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_with_dashboard
from flow.testing.speech import encode, speak_piper
from tests.ui.browser import chromium, wait_until

pytestmark = pytest.mark.timeout(240)


def text_of(driver, testid: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
        return json.load(r)


def test_inject_watch_interrupt_and_refuse_a_broken_graph(tmp_path) -> None:
    question = tmp_path / "question.webm"
    question.write_bytes(encode(speak_piper("Please set a timer for ten minutes."), "webm"))
    stub = OpenAIStub().start_in_thread()
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test"}
    try:
        with serve_with_dashboard(env, "--graph", "local_llm") as (url, ui_url), chromium() as d:
            def shot(name: str) -> None:
                d.save_screenshot(str(tmp_path / f"{name}.png"))

            d.get(ui_url)
            wait_until(lambda: "Inject" in d.page_source, 30, "the dashboard page", d, tmp_path / "fail.png")
            shot("1-opened")

            # (a) a spoken question as a file: transcript, reply, per-stage latencies appear
            d.find_element(By.CSS_SELECTOR, "[data-testid=upload] input[type=file]").send_keys(str(question))
            wait_until(lambda: "timer" in text_of(d, "transcripts").lower(), 60, "the transcript", d,
                       tmp_path / "fail.png")
            wait_until(lambda: "You said" in text_of(d, "replies"), 60, "the reply", d, tmp_path / "fail.png")
            wait_until(lambda: "answered" in text_of(d, "turns"), 30, "the turn's latencies", d,
                       tmp_path / "fail.png")
            # the player fetches the reply's MP3 from the dashboard (monitor events carry none) and plays it
            player = d.find_element(By.CSS_SELECTOR, "[data-testid=replies] audio")
            assert "/reply-audio/" in player.get_attribute("src")
            player.click()  # a user's click: Chromium plays nothing before one
            d.execute_script("arguments[0].muted = true; arguments[0].play();", player)
            wait_until(lambda: d.execute_script("return arguments[0].duration > 0.5 && arguments[0].currentTime > 0.2",
                                                player), 15, "the reply playing", d, tmp_path / "fail.png")
            d.execute_script("arguments[0].pause();", player)
            shot("2-answered")

            # (b) a slow reply, interrupted while the assistant is thinking
            stub.chat.first_token_latency = 30.0
            box = d.find_element(By.CSS_SELECTOR, "input[data-testid=sentence], [data-testid=sentence] input")
            box.send_keys("Tell me a long story please")
            d.find_element(By.CSS_SELECTOR, "[data-testid=send-text]").click()
            wait_until(lambda: text_of(d, "state") == "thinking", 20, "state thinking", d, tmp_path / "fail.png")
            wait_until(lambda: stub.of("chat") and len(stub.of("chat")) >= 2, 20, "the slow chat request")
            shot("3-thinking")
            replies_before = text_of(d, "replies")
            d.find_element(By.CSS_SELECTOR, "[data-testid=interrupt]").click()
            wait_until(lambda: text_of(d, "state") == "interrupted", 10, "state interrupted", d,
                       tmp_path / "fail.png")
            wait_until(lambda: "cancelled" in text_of(d, "turns"), 10, "the turn marked cancelled", d,
                       tmp_path / "fail.png")
            wait_until(lambda: stub.cancelled, 10, "the upstream chat request cancelled")
            shot("4-interrupted")
            time.sleep(1.0)
            assert text_of(d, "replies") == replies_before  # the cancelled reply never shows up

            # (c) a broken graph is shown with its error and never applied
            d.find_element(By.CSS_SELECTOR, "[data-testid=graph-tab]").click()
            editor = wait_until(lambda: d.find_element(By.CSS_SELECTOR, "[data-testid=editor] .cm-content"), 15,
                                "the editor (tab switch)", d, tmp_path / "fail.png")
            wait_until(lambda: editor.click() or True, 10, "the editor (tab switch)", d, tmp_path / "fail.png")
            editor.send_keys(Keys.CONTROL, "a")
            editor.send_keys("nodes: [")
            d.find_element(By.CSS_SELECTOR, "[data-testid=apply]").click()
            wait_until(lambda: "not applicable" in text_of(d, "verdict"), 10, "the verdict", d,
                       tmp_path / "fail.png")
            assert "editor:" in text_of(d, "graph-issues")  # issues name file:line
            shot("5-broken-graph")
            assert health(url)["graph"]["name"] == "local_llm"

            # (d) the browser microphone (Chromium's fake device: a beep) streams webm/opus live
            d.find_element(By.CSS_SELECTOR, "[data-testid=sessions-tab]").click()
            wait_until(lambda: d.find_element(By.CSS_SELECTOR, "[data-testid=mic]").click() or True, 10,
                       "the microphone button", d, tmp_path / "fail.png")
            wait_until(lambda: "microphone live" in text_of(d, "inject-status"), 10, "the microphone", d,
                       tmp_path / "fail.png")
            levels = []
            wait_until(lambda: levels.append(float(d.find_element(
                By.CSS_SELECTOR, "[data-testid=sessions] tbody tr td:nth-child(4)").text)) or max(levels) > -50,
                15, "the beep's level", d, tmp_path / "fail.png")
            shot("6-microphone")
            d.find_element(By.CSS_SELECTOR, "[data-testid=mic]").click()
            assert text_of(d, "errors") == ""
    finally:
        stub.stop_thread()
