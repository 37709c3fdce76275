"""Chat completions through the OpenAI API (or any compatible server), streamed.

Streaming lets a barge-in close the HTTP response mid-answer: the `finally` closes the stream
when the consuming task is cancelled, so the server stops generating (and billing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from flow.contract.providers import ChatMessage
from flow.contract.resources import Resources
from nodes.openai_client import openai_client, openai_settings
from nodes.openai_errors import provider_errors


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
                async for chunk in stream:
                    if not chunk.choices:
                        continue  # compatible servers send usage-only or empty chunks
                    delta = chunk.choices[0].delta.content
                    if delta:
                        yield delta
            finally:
                await stream.close()
