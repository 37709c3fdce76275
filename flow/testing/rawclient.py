"""A Socket.IO client on a bare TCP socket that reads only when told to: a client that stops reading.

Engine.IO v4 over a websocket, by hand: `GET /socket.io/?EIO=4&transport=websocket` (upgrade),
the server's open packet `0{"sid", …}`, our namespace connect `40{auth}`, its answer
`40{"sid"}`; then `42["event", data]` both ways. Its receive buffer is small and nothing reads it
between calls, so the server's writes back up exactly as behind a stalled client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit


class RawSocketIO:
    """`sid = await RawSocketIO().connect(url)`, then `emit(...)` and, only if wanted, `read(...)`."""

    def __init__(self, rcvbuf: int = 4096) -> None:
        self.rcvbuf = rcvbuf
        self.sock: socket.socket | None = None
        self._buf = b""
        self.eof = False

    async def connect(self, url: str, auth: dict[str, Any] | None = None, timeout: float = 10.0) -> str:
        """Open the websocket and the default namespace; the Socket.IO sid the server gave."""
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
            raise ConnectionError(f"no websocket upgrade: {head[:200]!r}")
        opened = await self._next_text(timeout)
        if not opened.startswith("0"):
            raise ConnectionError(f"expected the Engine.IO open packet, got {opened[:80]!r}")
        await self.send_text("40" + (json.dumps(auth) if auth else ""))
        while True:
            answer = await self._next_text(timeout)
            if answer.startswith("40"):
                return json.loads(answer[2:])["sid"]
            if answer.startswith("44"):
                raise ConnectionRefusedError(answer)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.send_text("42" + json.dumps([event] if data is None else [event, data]))

    async def send_text(self, text: str) -> None:
        """One masked websocket text frame (what a browser sends)."""
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    async def read(self, timeout: float) -> list[str]:
        """Every text frame until the server closes the connection (or `timeout` passes)."""
        frames: list[str] = []
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            frame = self._frame()
            if frame is not None:
                if frame[0] == 0x1:
                    frames.append(frame[1].decode())
                elif frame[0] == 0x8:
                    break
                continue
            await self._fill(max(0.01, deadline - time.monotonic()))
        return frames

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # ------------------------------------------------------------------ framing

    async def _fill(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
        except TimeoutError:
            return
        except OSError:  # reset by the server
            data = b""
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
