"""Chat completions through the OpenAI API (or any compatible server), streamed.

Streaming lets a barge-in close the HTTP response mid-answer: the `finally` closes the stream
when the consuming task is cancelled, so the server stops generating (and billing).

A stream can also go wrong after it started: the server stops sending (a stalled model, or a
proxy that keeps the connection alive with SSE comments), the connection breaks off, or an event
is not the JSON it should be. The SDK raises those as they come (a transport error, a
`JSONDecodeError`): here each becomes a `ProviderError` with a plain message, never the parser's
text, and a stream that sends no chunk for `timeout_s` is given up.

The request goes through the SDK's generic `post` (`call_options` says why) with the chunks left
as the JSON dicts they are: `chat.completions.create` builds a pydantic model per streamed token,
half the CPU of a chat call (1.7 → 0.7 ms per ten-chunk reply against the loopback stub).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import openai

from flow.contract.providers import ChatMessage, ProviderError
from flow.contract.resources import Resources
from nodes.openai_client import call_options, openai_client, openai_settings
from nodes.openai_errors import provider_errors

log = logging.getLogger("voicegraph.openai")


class OpenAIResponder:
    """A streamed chat completion (`POST /chat/completions`, `stream: true`), yielding text deltas."""

    name = "openai"

    def __init__(self, resources: Resources, model: str = "gpt-4o-mini", timeout_s: float | None = None,
                 temperature: float | None = None) -> None:
        self.resources = resources
        self.model = model
        self.timeout_s = timeout_s or openai_settings(resources).timeout_s
        self.temperature = temperature

    async def reply(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        body: dict[str, object] = {"model": self.model, "stream": True,
                                   "messages": [{"role": m.role, "content": m.content} for m in messages]}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        with provider_errors("chat completion"):
            stream = await openai_client(self.resources).post(
                "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object],
                options=call_options(self.timeout_s),
            )
            try:
                chunks = aiter(stream)
                while (delta := await self._next_delta(chunks)) is not None:
                    if delta:
                        yield delta
            finally:
                await stream.close()

    async def _next_delta(self, chunks: AsyncIterator) -> str | None:
        """The text of the stream's next chunk ("" if it has none, None at the end), within
        `timeout_s`; whatever goes wrong on the way is a `ProviderError` (an error the provider
        reported in the stream goes on to `provider_errors`, which words it)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                chunk = await anext(chunks)
            if not isinstance(chunk, dict):
                raise TypeError(f"a chunk is a {type(chunk).__name__}")
            choices = chunk.get("choices")
            if not choices:
                return ""  # compatible servers send usage-only or empty chunks
            delta = (choices[0].get("delta") or {}).get("content")
            if delta is not None and not isinstance(delta, str):
                raise TypeError(f"delta content is a {type(delta).__name__}")
            return delta or ""
        except StopAsyncIteration:
            return None
        except openai.OpenAIError as err:
            if not isinstance(err, openai.APIConnectionError):
                raise  # an error event in the stream: `provider_errors` words it
            raise self._failed(err) from err
        except Exception as err:
            raise self._failed(err) from err

    def _failed(self, err: Exception) -> ProviderError:
        """What went wrong with a stream that had started, in words for the client."""
        if isinstance(err, TimeoutError | openai.APITimeoutError) or any(
                c.__name__.endswith(("Timeout", "TimeoutException")) for c in type(err).__mro__):
            reason = f"the stream stalled (nothing for {self.timeout_s:g} s)"
        elif isinstance(err, ValueError | TypeError | AttributeError | KeyError):
            reason = "the provider sent a malformed stream"
        else:
            reason = "the stream broke off"
        log.info("chat completion: %s: %s: %.200s", reason, type(err).__name__, err)
        return ProviderError(f"chat completion failed: {reason}")
