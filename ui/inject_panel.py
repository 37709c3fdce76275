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

from flow.graph.spec import CLIENT
from ui.reply_player import ReplyPlayer
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
        self.listeners = [on_session]
        """Told the testbench session's id once it is connected, before anything is sent (the
        sessions list selects it; the tap starts watching it)."""
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
                ui.space()
                self.player = ReplyPlayer(dashboard, self.bench)
            with ui.row().classes("items-center w-full"):
                self.sentence = ui.input("Sentence", placeholder="What time is it in Paris?") \
                    .classes("grow").props("data-testid=sentence")
                ui.button("Speak it", on_click=self._run(self._speak)).props("data-testid=speak")
                ui.button("Send as text", on_click=self._run(self._text)).props("outline data-testid=send-text")
            with ui.row().classes("items-center w-full"):
                self.upload = ui.upload(label="Audio file (wav, mp3, webm, ogg)", auto_upload=True,
                          max_file_size=MAX_UPLOAD_BYTES, on_upload=self._upload) \
                    .props('accept="audio/*,video/webm,.wav,.mp3,.webm,.ogg,.opus,.flac" data-testid=upload') \
                    .classes("w-72")
                self.mic = ui.button("Microphone", icon="mic", on_click=self._toggle_mic) \
                    .props("outline data-testid=mic")
                ui.button("Replay", icon="replay", on_click=self._run(self._replay)).props("outline data-testid=replay")
                ui.button("Interrupt", icon="stop", color="negative", on_click=self._run(self._interrupt)) \
                    .props("data-testid=interrupt")
        self._said: str | None = None
        """What the last action did ("text sent"), shown with the session's state while that lasts."""
        self._sending: tuple[str, str] | None = None
        """An injection's words while its audio streams and once it has ("sending 1.2 s of …",
        "sent 1.2 s of …"): a present tense must not outlive the audio it names."""
        self._reply_before: str | None = None
        """The newest reply's id when the action was taken: a later one means it was answered."""
        ui.timer(0.25, self._follow)
        ui.add_body_html(f"<script>{MIC_JS}</script>")
        ui.on("vg_mic_start", lambda e: self._mic.put_nowait(("start", e.args.get("mime", ""))))
        ui.on("vg_mic_chunk", lambda e: self._mic.put_nowait(("chunk", e.args.get("b64", ""))))
        ui.on("vg_mic_stop", lambda e: self._mic.put_nowait(("stop", None)))

    # ------------------------------------------------------------------ actions

    def _run(self, action: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[None]]:
        """Run a button's action; problems become a notification, never a broken page."""

        async def run() -> bool:
            try:
                await self.bench.connect()
                self._joined()
                self._mark()
                self._say(f"testbench session {self.bench.sid}: {await action()}")
                return True
            except TestbenchError as err:
                self._say(f"not sent: {err}", failed=True)
            except Exception as err:  # the page must survive whatever the server does
                self._say(f"not sent: {type(err).__name__}: {err}", failed=True)
            return False

        return run

    def _mark(self) -> None:
        """Before an action: remember the newest reply, so the status says "answered" only for a
        reply that comes after it."""
        view = self.dashboard.state.find(self.bench.sid) if self.bench.sid else None
        self._reply_before = view.replies[-1].id if view is not None and view.replies else None
        self._sending = None

    def _joined(self) -> None:
        for listener in self.listeners:
            listener(self.bench.sid or "")

    def _say(self, text: str, failed: bool = False, notify: bool = True) -> None:
        """The status line (red when an action failed, with a notification too if `notify`: only
        from a handler of this page, not from the microphone's pump task). Unless it failed, the
        testbench session's state follows it (`_follow`)."""
        self._said = None if failed else text
        if self._sending is not None and self._sending[0] not in text:
            self._sending = None
        self.status.set_text(text)
        self.status.classes(replace="text-sm text-red-700 font-bold" if failed else "text-sm opacity-70")
        if failed and notify:
            ui.notify(text, type="negative")

    def _follow(self) -> None:
        """Keep the status line true as the turn goes on: the injection's words in the past tense
        once its audio is sent, then the session's state, which ends at "answered" (or idle,
        listening, …) when the reply has played — a streamed reply's pieces included."""
        if self._said is None:
            return
        text = self._said
        if self._sending is not None and not self.bench.streaming:
            doing, done = self._sending
            text = text.replace(doing, done, 1)
        view = self.dashboard.state.find(self.bench.sid) if self.bench.sid else None
        if view is not None:
            state = view.current_state()
            answered = bool(view.replies) and view.replies[-1].id != self._reply_before
            if answered and state in ("idle", "listening"):
                state = "answered" if state == "idle" else "answered, listening"
            text += f" · {state}"
        if text != self.status.text:
            self.status.set_text(text)

    def _takes(self, port: str, what: str) -> None:
        """Refuse, before sending, what the testbench session's graph has no edge for."""
        session = self.dashboard.server.sessions.get(self.bench.sid or "")
        spec = session.spec if session is not None else self.dashboard.server.spec
        if not any(e.src == CLIENT and e.src_port == port for e in spec.edges):
            raise TestbenchError(f"graph {spec.name!r} takes no {what}: it has no edge from client.{port}")

    async def _speak(self) -> str:
        self._takes("audio", "audio")
        seconds = await self.bench.inject_speech(self.sentence.value or "")
        return self._streams(f"{seconds:.1f} s of synthesized speech", "sending", "sent")

    def _streams(self, what: str, doing: str, done: str) -> str:
        """The status of an injection that streams for a while: `doing what`, then `done what`."""
        self._sending = (f"{doing} {what}", f"{done} {what}")
        return f"{doing} {what}"

    async def _text(self) -> str:
        self._takes("text", "text messages")
        await self.bench.send_text(self.sentence.value or "")
        return "text sent"

    async def _replay(self) -> str:
        self._takes("audio", "audio")
        return self._streams(f"{await self.bench.replay():.1f} s", "replaying", "replayed")

    async def _interrupt(self) -> str:
        await self.bench.interrupt()
        return "interrupt sent"

    async def _upload(self, e: events.UploadEventArguments) -> None:
        data = await e.file.read()

        async def inject() -> str:
            self._takes("audio", "audio")
            return self._streams(f"{e.file.name} ({await self.bench.inject_file(data):.1f} s)", "streaming", "streamed")

        if not await self._run(inject)():
            self.upload.reset()  # no green tick on a file that was not streamed

    # ------------------------------------------------------------------ microphone

    async def _toggle_mic(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._pump_mic(), name="mic-pump")
        if self.mic.props.get("color") == "negative":
            ui.run_javascript("window.vgMic.stop()")
            self.mic.props(remove="color").props("outline")
            self._say(f"testbench session {self.bench.sid}: microphone stopped")
            return
        try:
            await self.bench.connect()
            self._joined()
            self._takes("audio", "audio")
            self._mark()
            await ui.run_javascript("window.vgMic.start()", timeout=10)
        except Exception as err:
            self._say(f"microphone unavailable: {err}", failed=True)
            return
        self.mic.props(remove="outline").props("color=negative")
        self._say(f"testbench session {self.bench.sid}: microphone live")

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
                    self._say(f"testbench session {self.bench.sid}: microphone stopped")
            except Exception as err:
                self._say(f"microphone: {err}", failed=True, notify=False)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.bench.close()
