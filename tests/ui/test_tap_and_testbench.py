"""The message tap and the testbench, in a real headless Chromium against a real `voicegraph serve`.

The OpenAI-compatible stub on loopback answers every provider (fast, and with fault switches).
Chromium runs with autoplay allowed, as a developer's browser does once they clicked the page.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from selenium.webdriver.common.by import By

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_with_dashboard
from flow.testing.speech import encode, speak_espeak
from tests.ui.browser import chromium, wait_until

pytestmark = pytest.mark.timeout(240)

AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
VOICE_PATH = ["client.audio -> buffer.audio", "buffer.audio -> finalizer.audio",
              "finalizer.utterance -> stt.utterance", "stt.transcript -> turns.transcript",
              "turns.turn -> llm.turn", "llm.reply -> tts.reply", "tts.speech -> gate.response",
              "gate.response -> client.response"]
TEXT_ONLY = """version: 1
name: textonly
description: typed turns only
nodes:
  turns: {type: turn_taker}
  gate:  {type: interrupt_gate}
  llm:   {type: responder}
edges:
  - client.text      -> turns.text
  - turns.turn       -> client.message
  - turns.typing     -> client.typing
  - turns.turn       -> llm.turn
  - turns.turn       -> gate.turn
  - llm.reply        -> gate.response
  - gate.response    -> client.response
  - gate.typing      -> client.typing
  - client.interrupt -> gate.interrupt
  - gate.cancel      -> llm.cancel
  - gate.cancel      -> client.cancel
  - client.delivered -> llm.delivered
  - llm.error        -> client.error
  - llm.error        -> gate.failed
"""


def text_of(driver, testid: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def click(driver, testid: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").click()


def type_into(driver, testid: str, text: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, f"input[data-testid={testid}], [data-testid={testid}] input")
    box.clear()
    box.send_keys(text)


def upload(driver, path) -> None:
    driver.find_element(By.CSS_SELECTOR, "[data-testid=upload] input[type=file]").send_keys(str(path))


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether every label of `wanted` is in `seen`, first occurrences in that order."""
    return all(w in seen for w in wanted) and [seen.index(w) for w in wanted] == sorted(seen.index(w) for w in wanted)


@pytest.fixture
def stub():
    s = OpenAIStub().start_in_thread()
    yield s
    s.stop_thread()


def env_for(stub: OpenAIStub, **more: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test", **more}


def test_the_tap_shows_a_voice_turn_on_its_edges_and_the_testbench_plays_the_reply(tmp_path, stub) -> None:
    question = tmp_path / "question.wav"
    question.write_bytes(encode(speak_espeak("hello there"), "wav"))
    fail = tmp_path / "fail.png"
    with serve_with_dashboard(env_for(stub), "--graph", "default") as (url, ui_url), chromium(AUTOPLAY) as d:
        d.get(ui_url)
        wait_until(lambda: "Inject" in d.page_source, 30, "the dashboard page", d, fail)
        upload(d, question)
        wait_until(lambda: "hello there" in text_of(d, "transcripts"), 60, "the transcript", d, fail)
        wait_until(lambda: "You said" in text_of(d, "replies"), 60, "the reply", d, fail)
        # the testbench plays the reply by itself (no click on a player)
        wait_until(lambda: d.execute_script(
            "return document.querySelector('[data-testid=autoplayer]').currentTime > 0.2"), 20,
            "the reply playing on its own", d, fail)
        d.save_screenshot(str(tmp_path / "1-answered.png"))

        click(d, "tap-tab")
        wait_until(lambda: "gate.response -> client.response" in text_of(d, "tap-table"), 20, "the tap's rows", d, fail)
        rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "[data-testid=tap-table] tbody tr td:nth-child(3)")]
        assert rows[0] == "client.start -> buffer.start"
        assert in_order(rows, VOICE_PATH)
        sizes = [r.text for r in d.find_elements(By.CSS_SELECTOR, "[data-testid=tap-table] tbody tr")
                 if "client.audio -> buffer.audio" in r.text]
        assert sizes and all(" B>" in r for r in sizes)  # audio by its size, never its bytes
        seqs = [int(r.text) for r in
                d.find_elements(By.CSS_SELECTOR, "[data-testid=tap-table] tbody tr td:nth-child(1)")]
        assert seqs == sorted(seqs)

        click(d, "tap-last-turn")
        wait_until(lambda: "path of turn" in text_of(d, "tap-path"), 10, "the followed path", d, fail)
        path = text_of(d, "tap-path").split(": ", 1)[1].split(", ")
        assert in_order(path, VOICE_PATH) and "client.start -> buffer.start" in path
        highlighted = wait_until(lambda: d.execute_script(
            "return [...document.querySelectorAll('[data-testid=tap-graph] svg path')]"
            ".filter(p => getComputedStyle(p).strokeWidth === '4px').length"), 15, "the highlighted edges", d, fail)
        assert highlighted == len(path)
        d.save_screenshot(str(tmp_path / "2-tap.png"))

        # another client, tapped by its label (`/?tap=NAME`, as the bench does); kept after it leaves
        d.get(ui_url + "/?tap=probe-client")
        wait_until(lambda: "named 'probe-client'" in d.page_source, 30, "the named tap", d, fail)
        wait_until(lambda: text_of(d, "tap-status"), 30, "the tab waiting for the label", d, fail)

        async def labelled_turn() -> None:
            c = await Recorder().connect(url, auth={"label": "probe-client"})
            try:
                # at once, before the tab can have found the session: tapped from its first message
                await c.emit("text-message", "Tapped by name")
                await c.wait("ai-response", timeout=30)
                sid = c.sio.get_sid()
                for _ in range(100):  # stay until the tab has found it (it looks twice a second)
                    if sid in text_of(d, "tap-status"):
                        break
                    await asyncio.sleep(0.2)
            finally:
                await c.close()

        asyncio.run(labelled_turn())
        wait_until(lambda: "client.text -> turns.text" in text_of(d, "tap-table"), 20, "the named session's rows",
                   d, fail)
        wait_until(lambda: "session closed" in text_of(d, "tap-status"), 20, "the log kept after close", d, fail)
        assert "Tapped by name" in text_of(d, "tap-table")


def test_nothing_heard_a_failed_node_and_a_bad_upload_settle_with_feedback(tmp_path, stub) -> None:
    stub.transcript = ""  # whatever is sent is heard as no words
    noise = tmp_path / "noise.wav"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "anoisesrc=color=pink:amplitude=0.3:duration=1.5:r=16000", str(noise)], check=True)
    garbage = tmp_path / "broken.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    fail = tmp_path / "fail.png"
    with serve_with_dashboard(env_for(stub), "--graph", "default") as (_, ui_url), chromium(AUTOPLAY) as d:
        d.get(ui_url)
        wait_until(lambda: "Inject" in d.page_source, 30, "the dashboard page", d, fail)

        # a noise-only recording: "nothing heard", and the session goes back to listening/idle
        upload(d, noise)
        states: set[str] = set()
        wait_until(lambda: states.add(text_of(d, "state")) or "nothing heard" in text_of(d, "transcripts"), 40,
                   "nothing heard", d, fail)
        wait_until(lambda: states.add(text_of(d, "state")) or text_of(d, "state") in ("listening", "idle"), 15,
                   "the state settling", d, fail)
        assert "transcribing" in states or "nothing heard" in states or "speech" in states
        d.save_screenshot(str(tmp_path / "1-nothing-heard.png"))

        # a file that is no audio: said so, and the uploader shows no (green) uploaded file
        upload(d, garbage)
        wait_until(lambda: "not sent" in text_of(d, "inject-status"), 20, "the bad upload refused", d, fail)
        wait_until(lambda: not d.find_elements(By.CSS_SELECTOR, "[data-testid=upload] .q-uploader__file--uploaded"),
                   10, "no uploaded tick", d, fail)

        # the LLM fails: the error is listed, the state settles, the node is red in the drawing
        stub.chat.status = 500
        type_into(d, "sentence", "Are you there?")
        click(d, "send-text")
        wait_until(lambda: text_of(d, "errors") != "", 30, "the error listed", d, fail)
        wait_until(lambda: text_of(d, "state") in ("failed", "listening", "idle"), 15, "the state settling", d, fail)
        wait_until(lambda: text_of(d, "state") in ("listening", "idle"), 15, "the state settled", d, fail)
        click(d, "tap-tab")
        wait_until(lambda: "llm" in text_of(d, "tap-failed"), 15, "the failed node named", d, fail)
        wait_until(lambda: "llm: responder · failed" in text_of(d, "tap-graph"), 15, "the failed node drawn", d, fail)
        d.save_screenshot(str(tmp_path / "2-failed.png"))


def test_feedback_for_input_the_graph_cannot_take_and_save_as(tmp_path, stub) -> None:
    graph = tmp_path / "textonly.yaml"
    graph.write_text(TEXT_ONLY)
    saved_dir = tmp_path / "saved"
    fail = tmp_path / "fail.png"
    with serve_with_dashboard(env_for(stub, VOICEGRAPH_GRAPHS_DIR=str(saved_dir)), "--graph", str(graph)) \
            as (_, ui_url), chromium(AUTOPLAY) as d:
        d.get(ui_url)
        wait_until(lambda: "Inject" in d.page_source, 30, "the dashboard page", d, fail)
        type_into(d, "sentence", "Hello there")
        click(d, "speak")
        wait_until(lambda: "takes no audio" in text_of(d, "inject-status"), 30, "the refusal", d, fail)
        click(d, "send-text")
        wait_until(lambda: "text sent" in text_of(d, "inject-status"), 15, "the text sent", d, fail)

        click(d, "graph-tab")
        wait_until(lambda: type_into(d, "save-name", "my_copy") or True, 10, "the graph tab", d, fail)
        click(d, "save-as")
        wait_until(lambda: "saved" in text_of(d, "save-result"), 15, "the save", d, fail)
        saved = saved_dir / "my_copy.yaml"
        assert saved.read_text() == TEXT_ONLY
        check = subprocess.run([sys.executable, "-m", "flow.cli", "check", str(saved)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # the notification of the save lies over the button (below the drawing) until it goes
        wait_until(lambda: not d.find_elements(By.CSS_SELECTOR, ".q-notification"), 15, "no notification", d, fail)
        click(d, "save-as")  # again: the file exists, and 'replace' is not ticked
        wait_until(lambda: "exists" in text_of(d, "save-result"), 15, "the refusal to overwrite", d, fail)
        time.sleep(0.2)
        assert saved.read_text() == TEXT_ONLY

        # a valid draft is drawn before it is applied; a problem, clicked, puts the cursor on its line
        set_editor(d, TEXT_ONLY.replace("name: textonly", "name: draft_one"))
        wait_until(lambda: "draft draft_one (not applied" in text_of(d, "graph-name"), 15, "the draft drawn", d, fail)
        set_editor(d, TEXT_ONLY.replace("{type: responder}", "{type: responderz}"))
        issue = wait_until(lambda: d.find_element(By.CSS_SELECTOR, "[data-testid=graph-issues] .cursor-pointer"), 15,
                           "the problem listed", d, fail)
        assert "editor:7" in issue.text and "textonly (" in text_of(d, "graph-name")  # the active graph again
        issue.click()
        wait_until(lambda: "responderz" in d.find_element(
            By.CSS_SELECTOR, "[data-testid=editor] .cm-activeLine").text, 10, "the cursor on line 7", d, fail)


def set_editor(driver, text: str) -> None:
    """Replace the editor's text as a paste would (typing would meet CodeMirror's auto-indent)."""
    driver.execute_script(
        "const v = getElement(document.querySelector('[data-testid=editor]')).editor;"
        "v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: arguments[0]}});", text)
