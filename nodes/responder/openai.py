"""Chat completions through the OpenAI API (or any compatible server), streamed.

Streaming lets a barge-in close the HTTP response mid-answer: the `finally` closes the stream
when the consuming task is cancelled, so the server stops generating (and billing).

A stream can also go wrong after it started: the server stops sending (a stalled model, or a
proxy that keeps the connection alive with SSE comments), the connection breaks off, or an event
is not the JSON it should be. The SDK raises those as they come (a transport error, a
`JSONDecodeError`): here each becomes a `ProviderError` with a plain message, never the parser's
text, and a stream that sends no chunk for `timeout_s` is given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import openai

from flow.contract.providers import ChatMessage, ProviderError
from flow.contract.resources import Resources
from nodes.openai_client import openai_client, openai_settings
from nodes.openai_errors import provider_errors

log = logging.getLogger("voicegraph.openai")


class OpenAIResponder:
    """`chat.completions.create(stream=True)`, yielding text deltas."""

    name = "openai"

    def __init__(self, resources: Resources, model: str = "gpt-4o-mini", timeout_s: float | None = None,
                 temperature: float | None = None) -> None:
        self.resources = resources
        self.model = model
        self.timeout_s = timeout_s or openai_settings(resources).timeout_s
        self.temperature = temperature

    async def reply(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        extra = {"temperature": self.temperature} if self.temperature is not None else {}
        with provider_errors("chat completion"):
            # The messages travel in `extra_body`: the SDK otherwise re-walks every message against
            # its typed-dict schema on each call (most of a turn's CPU in our profile) to produce a
            # byte-identical body. `extra_body` keys replace the empty placeholder.
            stream = await openai_client(self.resources).chat.completions.create(
                model=self.model, stream=True, timeout=self.timeout_s, messages=[],
                extra_body={"messages": [{"role": m.role, "content": m.content} for m in messages]}, **extra,
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
            if not chunk.choices:
                return ""  # compatible servers send usage-only or empty chunks
            delta = chunk.choices[0].delta.content
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
