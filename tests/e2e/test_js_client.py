"""The official JavaScript socket.io-client, as a frontend uses it, against `voicegraph serve`.

A spoken question (piper) encoded as webm/opus is streamed in 100 ms slices, paced in real time,
with no `stop-recording`: the server must find the end of speech itself.
"""

from __future__ import annotations

import base64
import json
import subprocess
import wave
from pathlib import Path

from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_process
from flow.testing.speech import encode, mp3_seconds, speak_piper

JS = Path(__file__).parent / "js"
QUESTION = "What is the weather like in Paris today?"


def run_js_client(url: str, tmp_path: Path) -> list[dict]:
    wav = speak_piper(QUESTION)
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate() + 1.8
    webm = tmp_path / "question.webm"
    webm.write_bytes(encode(wav, "webm"))
    run = subprocess.run(["node", str(JS / "stream.mjs"), url, str(webm), "audio/webm;codecs=opus", f"{seconds:.2f}"],
                         capture_output=True, text=True, timeout=90)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0, f"node client failed ({run.returncode}): {run.stderr}\n{events}"
    return events


def first(events: list[dict], name: str) -> dict:
    found = [e for e in events if e["event"] == name]
    assert found, f"no {name} in {[e['event'] for e in events]}"
    return found[0]


def test_js_client_with_openai_compatible_server(tmp_path: Path) -> None:
    stub = OpenAIStub(transcript="what is the weather like in paris today").start_in_thread()
    try:
        with serve_process({"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test"}) as url:
            events = run_js_client(url, tmp_path)
    finally:
        stub.stop_thread()
    result = first(events, "speech-result")
    assert result["payload"]["isFinal"] is True and result["payload"]["text"] == stub.transcript
    resp = first(events, "ai-response")["payload"]
    assert resp["replyTo"] == first(events, "message-received")["payload"]["id"]
    assert mp3_seconds(base64.b64decode(resp["audioB64"])) > 0.5
    assert len(stub.of("transcriptions")) == 1


def test_js_client_offline_default(tmp_path: Path) -> None:
    with serve_process({}) as url:
        events = run_js_client(url, tmp_path)
    text = first(events, "speech-result")["payload"]["text"]
    assert {"weather", "paris", "today"} <= set(text.split()), text
    resp = first(events, "ai-response")["payload"]
    assert "weather" in resp["text"]
    assert 1.5 < mp3_seconds(base64.b64decode(resp["audioB64"])) < 15
