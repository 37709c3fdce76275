"""The dashboard says `interrupted` only when the server really cut something (headless Chromium).

A real `voicegraph serve --graph streaming` (paced pieces) with the LLM and the speech at the
loopback OpenAI stub; the dashboard's own testbench client sends text and interrupts. An interrupt
after a reply was whole and played cuts nothing: the badge must not say `interrupted` and the turn
stays answered. An interrupt while a five-sentence reply is still being sent at playback speed
cuts its unsent pieces: `interrupted`, and the turn reads cancelled.
"""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_with_dashboard
from tests.ui.browser import chromium, wait_until

pytestmark = pytest.mark.timeout(240)

SHORT = "Sure."
LONG = ("The first sentence of this story is long enough to play for a few seconds. "
        "The second sentence is about as long, and it plays for a few seconds too. "
        "The third sentence carries on in the same way for a while longer. "
        "The fourth sentence is nearly the end of this rather long answer. "
        "The fifth sentence finally ends the story that nobody wanted to hear.")


def text_of(driver, testid: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def send_text(d, text: str) -> None:
    box = d.find_element(By.CSS_SELECTOR, "input[data-testid=sentence], [data-testid=sentence] input")
    box.clear()
    box.send_keys(text)
    d.find_element(By.CSS_SELECTOR, "[data-testid=send-text]").click()


def turn_statuses(d) -> list[str]:
    """The turn table's status column, newest turn first."""
    table = d.find_element(By.CSS_SELECTOR, "[data-testid=turns]")
    heads = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    col = heads.index("status")
    return [row.find_elements(By.CSS_SELECTOR, "td")[col].text
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            if len(row.find_elements(By.CSS_SELECTOR, "td")) > col]


def test_interrupted_shows_only_when_a_reply_was_cut(tmp_path) -> None:
    stub = OpenAIStub(reply=SHORT).start_in_thread()
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test"}
    fail = tmp_path / "fail.png"
    try:
        with serve_with_dashboard(env, "--graph", "streaming") as (_url, ui_url), chromium() as d:
            d.get(ui_url)
            wait_until(lambda: "Inject" in d.page_source, 30, "the dashboard page", d, fail)

            # (a) a one-second reply, sent whole and played out; then an interrupt: nothing to cut
            send_text(d, "Are you there?")
            wait_until(lambda: turn_statuses(d)[:1] == ["answered"], 30, "the short reply answered", d, fail)
            wait_until(lambda: text_of(d, "state") in ("idle", "listening"), 15, "the reply played out", d, fail)
            d.find_element(By.CSS_SELECTOR, "[data-testid=interrupt]").click()
            seen = set()
            until = time.monotonic() + 2.5  # the old badge said `interrupted` for 2 s after any interrupt
            while time.monotonic() < until:
                seen.add(text_of(d, "state"))
                time.sleep(0.1)
            d.save_screenshot(str(tmp_path / "a-interrupt-after-the-reply.png"))
            assert "interrupted" not in seen, seen
            assert turn_statuses(d)[:1] == ["answered"]
            assert stub.cancelled == []

            # (b) a five-sentence reply paced at playback speed, interrupted after its first piece
            stub.reply = LONG
            send_text(d, "Tell me a long story")
            wait_until(lambda: text_of(d, "state") == "speaking", 30, "the long reply speaking", d, fail)
            d.find_element(By.CSS_SELECTOR, "[data-testid=interrupt]").click()
            wait_until(lambda: text_of(d, "state") == "interrupted", 10, "state interrupted", d, fail)
            wait_until(lambda: turn_statuses(d)[:1] == ["cancelled"], 10, "the turn cancelled", d, fail)
            d.save_screenshot(str(tmp_path / "b-interrupt-mid-reply.png"))
            replies = text_of(d, "replies")
            assert "first sentence" in replies and "fifth sentence" not in replies  # later pieces never sent
    finally:
        stub.stop_thread()
