"""The HTTP client the shared `AsyncOpenAI` speaks through: the SDK's aiohttp transport.

Why not the SDK's default (httpx2 over httpcore2): under a burst (every session's STT, chat and
TTS requests at once) httpcore2's pool checks every pooled connection each time a request starts or
ends, which grows with the square of the requests in flight; the bench's burst was CPU-bound on it.
aiohttp's connector and its C HTTP parser do the same work for much less CPU (BENCHMARKS.md notes).

What stays the SDK's: the per-call timeout (mapped to aiohttp's connect/read timeouts), retries,
`stream.close()` aborting a streamed reply, the base URL. One thing is corrected here: the
vendored transport reports every `aiohttp.ClientConnectionError` as a *connect timeout*, so a
refused connection read as "timed out" instead of "cannot reach"; here a connection error that is
not a timeout is a connection error (`httpx2.ConnectError` before the response, `ReadError` after).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import httpx2

try:  # the SDK's own, vendored: a private module, so a later SDK may move it
    from openai import DefaultAioHttpClient
    from openai._vendor.httpx_aiohttp.transport import AiohttpTransport
except ImportError:  # pragma: no cover - depends on the installed SDK
    DefaultAioHttpClient = AiohttpTransport = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
"""The SDK's default pool limits (its `DEFAULT_CONNECTION_LIMITS`); the vendored transport's own
default would cap the process at 100 connections, fewer than a burst of sessions needs."""


def _not_a_timeout(err: BaseException) -> bool:
    cause = err.__cause__
    return isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, asyncio.TimeoutError)


class _Body(httpx2.AsyncByteStream):
    """A response body whose broken connection is a read error, not a timeout."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx2.ConnectTimeout as err:
            if _not_a_timeout(err):
                raise httpx2.ReadError(str(err)) from err.__cause__
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Transport(AiohttpTransport or httpx2.AsyncBaseTransport):  # type: ignore[misc]
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx2.ConnectTimeout as err:
            if _not_a_timeout(err):
                raise httpx2.ConnectError(str(err), request=request) from err.__cause__
            raise
        response.stream = _Body(response.stream)
        return response


def http_client(timeout_s: float) -> httpx2.AsyncClient | None:
    """An HTTP client for `AsyncOpenAI(http_client=…)`: the SDK's defaults, the aiohttp transport;
    None (the SDK's own httpx client: slower under bursts, otherwise the same) when the installed
    SDK no longer has the vendored transport, rather than failing every provider call."""
    if AiohttpTransport is None:
        log.warning("this openai SDK has no vendored aiohttp transport: using its default HTTP client")
        return None
    return DefaultAioHttpClient(timeout=timeout_s, transport=_Transport(limits=LIMITS))
