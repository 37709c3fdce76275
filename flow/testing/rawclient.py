"""A Socket.IO client on a bare TCP socket that reads only when told to: a client that stops reading,
or one that sends what no official client would.

Engine.IO v4 over a websocket, by hand: `GET /socket.io/?EIO=4&transport=websocket` (upgrade),
the server's open packet `0{"sid", …}`, our namespace connect `40{auth}`, its answer
`40{"sid"}`; then `42["event", data]` both ways. Its receive buffer is small by default and nothing
reads it between calls, so the server's writes back up exactly as behind a stalled client.
`send_text`/`send_binary` put any frame on the wire (`42[`, `451-…`, a lone attachment). It answers
the server's pings only while it reads (`read`, `pump`): a client that stops reading also looks
dead to the ping check, as a real one would. It can also vanish in the ways a network drops a
client: `close()` (FIN, no close frame), `abort()` (RST), or simply nothing more (a cut network).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


class RawSocketIO:
    """`sid = await RawSocketIO().connect(url)`, then `emit(...)` and, only if wanted, `read(...)`."""

    def __init__(self, rcvbuf: int = 4096) -> None:
        self.rcvbuf = rcvbuf
        self.sock: socket.socket | None = None
        self._buf = b""
        self.eof = False
        self.opened: dict[str, Any] = {}
        """The server's Engine.IO open packet (`sid`, `pingInterval`, `pingTimeout`, …)."""
        self.pings = 0
        """The server's pings read (and answered) so far."""

    async def connect(self, url: str, auth: dict[str, Any] | None = None, timeout: float = 10.0,
                      namespace: bool = True) -> str:
        """Open the websocket and (unless `namespace=False`) the default namespace; the Socket.IO
        sid the server gave (the Engine.IO sid without a namespace). A refused connect raises
        `ConnectionRefusedError` with the server's answer; the websocket stays open."""
        loop = asyncio.get_running_loop()
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)  # before connect: sets the window
        sock.setblocking(False)
        await loop.sock_connect(sock, (parts.hostname, parts.port))
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
        await loop.sock_sendall(sock, request.encode())
        while b"\r\n\r\n" not in self._buf:
            await self._fill(timeout)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            if not self._buf and not self.eof:
                await self._fill(1.0)  # the answer's body: why it was refused
            raise ConnectionError(f"no websocket upgrade: {head[:200]!r} {self._buf[:300]!r}")
        opened = await self._next_text(timeout)
        if not opened.startswith("0"):
            raise ConnectionError(f"expected the Engine.IO open packet, got {opened[:80]!r}")
        self.opened = json.loads(opened[1:])
        if not namespace:
            return self.opened["sid"]
        await self.send_text("40" + (json.dumps(auth) if auth else ""))
        while True:
            answer = await self._next_text(timeout)
            if answer.startswith("40"):
                return json.loads(answer[2:])["sid"]
            if answer.startswith("44"):
                raise ConnectionRefusedError(answer)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.send_text("42" + json.dumps([event] if data is None else [event, data]))

    async def emit_binary(self, event: str, data: bytes) -> None:
        """`event` with one binary attachment, as the official clients send an audio chunk."""
        await self.send_text("451-" + json.dumps([event, {"_placeholder": True, "num": 0}]))
        await self.send_binary(data)

    async def send_text(self, text: str) -> None:
        """One masked websocket text frame (what a browser sends); lone surrogates go as they are."""
        await self.send_frame(0x1, text.encode("utf-8", "surrogatepass"))

    async def send_binary(self, data: bytes) -> None:
        """One masked websocket binary frame: an Engine.IO binary message (an attachment)."""
        await self.send_frame(0x2, data)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        """One masked websocket frame of any opcode."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    async def pump(self, timeout: float = 0.0) -> list[str]:
        """Take what has arrived (answering pings), waiting up to `timeout` for more; its text frames."""
        if timeout > 0:
            return await self.read(timeout)
        self._take()
        return await self._handle_frames()

    async def read(self, timeout: float, until: Callable[[list[str]], bool] | None = None) -> list[str]:
        """Every text frame until the server closes the connection, `until(frames)` holds, or
        `timeout` passes; a ping (`2`) is answered (`3`) as it is read. A close frame or end of
        stream sets `eof`."""
        frames: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            frames += await self._handle_frames()
            if self.eof or time.monotonic() >= deadline or (until and until(frames)):
                return frames
            await self._fill(max(0.01, deadline - time.monotonic()))

    async def _handle_frames(self) -> list[str]:
        """The text frames in the buffer; pings answered, a close frame ends the stream (`eof`)."""
        frames: list[str] = []
        while (frame := self._frame()) is not None:
            if frame[0] == 0x1:
                text = frame[1].decode()
                if text != "2":
                    frames.append(text)
                    continue
                self.pings += 1
                if not self.eof:
                    with contextlib.suppress(OSError):  # the server may be gone already
                        await self.send_text("3")
            elif frame[0] == 0x8:
                self.eof = True
                break
        return frames

    async def events(self, timeout: float, until: Callable[[list[tuple[str, Any]]], bool] | None = None,
                     ) -> list[tuple[str, Any]]:
        """The Socket.IO events (`42[name, data]`) that `read` returns, as `(name, data)`."""
        test = (lambda frames: until(frame_events(frames))) if until else None
        return frame_events(await self.read(timeout, test))

    def close(self) -> None:
        """Close the socket without a websocket close frame (the kernel sends a FIN)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def abort(self) -> None:
        """Drop the connection with a TCP reset, as a crashed peer or a middlebox does."""
        if self.sock is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.sock = None

    # ------------------------------------------------------------------ framing

    def _take(self) -> None:
        """Whatever the kernel holds for us now, without waiting."""
        while self.sock is not None and not self.eof:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:  # reset by the server
                data = b""
            self._received(data)

    async def _fill(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
        except TimeoutError:
            return
        except OSError:  # reset by the server
            data = b""
        self._received(data)

    def _received(self, data: bytes) -> None:
        """Bytes read from the socket; none means the server closed it."""
        if not data:
            self.eof = True
        self._buf += data

    async def _next_text(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is not None and frame[0] == 0x1:
                return frame[1].decode()
            if frame is None:
                if self.eof or time.monotonic() > deadline:
                    raise ConnectionError("the server closed or did not answer")
                await self._fill(deadline - time.monotonic())

    def _frame(self) -> tuple[int, bytes] | None:
        """The next whole (unmasked, unfragmented: what servers send) frame in the buffer, if any."""
        buf = self._buf
        if len(buf) < 2:
            return None
        opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, at = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, at = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < at + n:
            return None
        self._buf = buf[at + n:]
        return opcode, buf[at:at + n]


def frame_events(frames: list[str]) -> list[tuple[str, Any]]:
    """The Socket.IO events among text frames, as `(name, data)`."""
    out = []
    for frame in frames:
        if frame.startswith("42"):
            name, *args = json.loads(frame[2:])
            out.append((name, args[0] if args else None))
    return out
