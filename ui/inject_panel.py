"""Inject controls: speak a typed sentence, upload a file, use the microphone, send text, interrupt.

Every control drives one `Testbench` (a real Socket.IO client of this server) per browser tab.
Microphone chunks arrive from the browser as events handled synchronously and sent by a single
pump task, because container chunks (webm/ogg) are only decodable in their original order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nicegui import events, ui

from ui.testbench import MAX_UPLOAD_BYTES, Testbench, TestbenchError

if TYPE_CHECKING:
    from ui.dashboard import Dashboard

MIC_JS = """
window.vgMic = window.vgMic || {
  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    const types = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm'];
    const mime = types.find(t => MediaRecorder.isTypeSupported(t)) || '';
    const rec = new MediaRecorder(stream, mime ? {mimeType: mime} : {});
    emitEvent('vg_mic_start', {mime: rec.mimeType || mime});
    rec.ondataavailable = async (e) => {
      if (!e.data.size) return;
      const bytes = new Uint8Array(await e.data.arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
      emitEvent('vg_mic_chunk', {b64: btoa(s)});
    };
    rec.onstop = () => { stream.getTracks().forEach(t => t.stop()); emitEvent('vg_mic_stop', {}); };
    rec.start(100);
    this.rec = rec;
  },
  stop() { if (this.rec) { this.rec.stop(); this.rec = null; } },
};
"""


class InjectPanel:
    """The inject card of one browser tab."""

    def __init__(self, dashboard: Dashboard, on_session: Callable[[str], None]) -> None:
        self.dashboard = dashboard
        self.on_session = on_session
        token = dashboard.server.settings.token
        self.bench = Testbench(dashboard.url or "", dashboard.server.resources,
                               token.get_secret_value() if token else None)
        self._mic: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task | None = None
        with ui.card().classes("w-full"):
            with ui.row().classes("items-center w-full"):
                ui.label("Inject").classes("text-base font-bold")
                self.status = ui.label("no testbench session yet").classes("text-sm opacity-70") \
                    .props("data-testid=inject-status")
            with ui.row().classes("items-center w-full"):
                self.sentence = ui.input("Sentence", placeholder="What time is it in Paris?") \
                    .classes("grow").props("data-testid=sentence")
                ui.button("Speak it", on_click=self._run(self._speak)).props("data-testid=speak")
                ui.button("Send as text", on_click=self._run(self._text)).props("outline data-testid=send-text")
            with ui.row().classes("items-center w-full"):
                ui.upload(label="Audio file (wav, mp3, webm, ogg)", auto_upload=True,
                          max_file_size=MAX_UPLOAD_BYTES, on_upload=self._upload) \
                    .props('accept="audio/*,video/webm,.wav,.mp3,.webm,.ogg,.opus,.flac" data-testid=upload') \
                    .classes("w-72")
                self.mic = ui.button("Microphone", icon="mic", on_click=self._toggle_mic) \
                    .props("outline data-testid=mic")
                ui.button("Replay", icon="replay", on_click=self._run(self._replay)).props("outline data-testid=replay")
                ui.button("Interrupt", icon="stop", color="negative", on_click=self._run(self._interrupt)) \
                    .props("data-testid=interrupt")
        ui.add_body_html(f"<script>{MIC_JS}</script>")
        ui.on("vg_mic_start", lambda e: self._mic.put_nowait(("start", e.args.get("mime", ""))))
        ui.on("vg_mic_chunk", lambda e: self._mic.put_nowait(("chunk", e.args.get("b64", ""))))
        ui.on("vg_mic_stop", lambda e: self._mic.put_nowait(("stop", None)))

    # ------------------------------------------------------------------ actions

    def _run(self, action: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[None]]:
        """Run a button's action; problems become a notification, never a broken page."""

        async def run() -> None:
            try:
                await self.bench.connect()
                self.on_session(self.bench.sid or "")
                self.status.set_text(f"testbench session {self.bench.sid}: {await action()}")
            except TestbenchError as err:
                ui.notify(str(err), type="negative")
            except Exception as err:  # the page must survive whatever the server does
                ui.notify(f"{type(err).__name__}: {err}", type="negative")

        return run

    async def _speak(self) -> str:
        seconds = await self.bench.inject_speech(self.sentence.value or "")
        return f"speaking {seconds:.1f} s of synthesized audio"

    async def _text(self) -> str:
        await self.bench.send_text(self.sentence.value or "")
        return "text sent"

    async def _replay(self) -> str:
        return f"replaying {await self.bench.replay():.1f} s"

    async def _interrupt(self) -> str:
        await self.bench.interrupt()
        return "interrupt sent"

    async def _upload(self, e: events.UploadEventArguments) -> None:
        data = await e.file.read()

        async def inject() -> str:
            return f"streaming {e.file.name} ({await self.bench.inject_file(data):.1f} s)"

        await self._run(inject)()

    # ------------------------------------------------------------------ microphone

    async def _toggle_mic(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._pump_mic(), name="mic-pump")
        if self.mic.props.get("color") == "negative":
            ui.run_javascript("window.vgMic.stop()")
            self.mic.props(remove="color").props("outline")
            return
        try:
            await self.bench.connect()
            self.on_session(self.bench.sid or "")
            await ui.run_javascript("window.vgMic.start()", timeout=10)
        except Exception as err:
            ui.notify(f"microphone unavailable: {err}", type="negative")
            return
        self.mic.props(remove="outline").props("color=negative")
        self.status.set_text(f"testbench session {self.bench.sid}: microphone live")

    async def _pump_mic(self) -> None:
        while True:
            what, value = await self._mic.get()
            try:
                if what == "start":
                    await self.bench.mic_start(value)
                elif what == "chunk":
                    await self.bench.mic_chunk(base64.b64decode(value))
                else:
                    await self.bench.mic_stop()
            except Exception as err:
                self.status.set_text(f"microphone: {err}")

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.bench.close()
