"""An engine.io websocket's life, without a task and a timeout per frame.

python-engineio's websocket handler (`AsyncSocket._websocket_handler`, 4.x) reads each frame by
wrapping the read in a new task and awaiting that under `asyncio.wait_for` with the ping timeout:
per frame a task, a timer armed and cancelled, a future and two extra turns of the event loop. An
audio chunk is two frames (the event's placeholder, then its bytes), 25 chunks a second per
session, so at 100 real-time webm sessions that machinery was ~17 % of the event loop's samples
(py-spy on the server), more than the graph itself. Ingest went from 52 to 25 µs CPU per chunk.

The timeout is not needed here: `LiveWebSocket` has one silence watchdog per connection. So
`serve` does what engine.io's handler does — the polling-to-websocket upgrade's probe, a writer
task sending what engine.io queues, each frame handed to `AsyncSocket.receive`, and on the way out
the writer stopped and the socket closed — but awaits the next frame directly. Engine.io's own
classes still decode packets, queue, ping and close; only the loop around them is ours.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from engineio import exceptions, packet


class Frames(Protocol):
    """What `serve` needs of the websocket (`LiveWebSocket`)."""

    async def wait(self) -> str | bytes: ...
    async def send(self, data: str | bytes) -> None: ...
    async def close(self) -> None: ...


async def serve(sock: Any, ws: Frames) -> None:
    """Run engine.io socket `sock` (an `AsyncSocket`) over websocket `ws` until either ends.
    `ws.wait()` raises OSError once the connection is over (it has closed `sock` by then). However
    this ends (the peer, an error, the request's task cancelled), the writer is ended and awaited
    and the socket closed: no task is left waiting on the queue."""
    if sock.connected:  # an upgrade from long-polling: the client probes the websocket first
        if not await _upgraded(sock, ws):
            return
    else:
        sock.connected = True
        sock.upgraded = True
    writer = asyncio.ensure_future(_write(sock, ws))
    sock.server.logger.info("%s: Upgrade to websocket successful", sock.sid)
    limit = sock.server.max_http_buffer_size
    try:
        while True:
            try:
                data = await ws.wait()
            except OSError:
                break
            if len(data) > limit:  # (aiohttp lets nothing larger through: a second line)
                break
            try:
                await sock.receive(packet.Packet(encoded_packet=data))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                sock.server.logger.info("Receive error -- socket is closed")
                break
            except Exception:  # as engine.io does: a handler's bug is logged, the connection goes on
                sock.server.logger.exception("Unknown receive error")
    finally:
        sock.queue.put_nowait(None)  # the writer's end (engine.io's queue is unbounded)
        await writer
        await sock.close(wait=False, abort=True, reason=sock.server.reason.TRANSPORT_CLOSE)


async def _upgraded(sock: Any, ws: Frames) -> bool:
    """The upgrade handshake: the client's `ping probe` answered with `pong probe`, the pending
    long-poll ended, then the client's `upgrade`. False (the client keeps polling) otherwise."""
    sock.upgrading = True  # engine.io holds its sends meanwhile
    try:
        probe = packet.Packet(encoded_packet=await ws.wait())
        if probe.packet_type != packet.PING or probe.data != "probe":
            sock.server.logger.info("%s: Failed websocket upgrade, no PING packet", sock.sid)
            return False
        await ws.send(packet.Packet(packet.PONG, data="probe").encode())
        await sock.queue.put(packet.Packet(packet.NOOP))  # ends the poll in flight
        upgrade = packet.Packet(encoded_packet=await ws.wait())
        if upgrade.packet_type != packet.UPGRADE:
            sock.upgraded = False
            sock.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                                    sock.sid, upgrade.packet_type)
            return False
        sock.upgraded = True
        return True
    except OSError:
        return False
    finally:
        sock.upgrading = False


async def _write(sock: Any, ws: Frames) -> None:
    """Send what engine.io queues for this socket until the queue's end (None) or a failed send.
    Engine.io's own writer waited on the queue under a timeout (a task and a timer per batch);
    nothing needs it here: a connection gone silent is closed by `LiveWebSocket`'s watchdog, and
    `serve` always ends the queue on its way out."""
    queue = sock.queue
    try:
        while True:
            batch = [await queue.get()]
            queue.task_done()
            while not queue.empty():  # what else is queued goes out in the same pass
                batch.append(queue.get_nowait())
                queue.task_done()
            for pkt in batch:
                if pkt is None:
                    return
                await ws.send(pkt.encode())
    except Exception:  # a peer that is gone: the reader sees it too and winds down
        pass
    finally:
        await ws.close()
