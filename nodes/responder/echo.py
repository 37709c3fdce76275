"""An honest offline responder: it repeats what it heard. It is not a language model.

It lets the whole voice path (speech in, speech out) run with no API key and no network; to talk
to a real local model instead, point `OPENAI_BASE_URL` at Ollama, llama.cpp server or vLLM and use
`graphs/local_llm.yaml`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from flow.contract.providers import ChatMessage
from flow.contract.resources import Resources


class EchoResponder:
    """Responder protocol without an LLM: 'You said: "…". That was turn N of this conversation.'"""

    name = "echo"

    def __init__(self, resources: Resources | None = None) -> None:
        self.resources = resources

    async def reply(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        users = [m.content for m in messages if m.role == "user"]
        heard = users[-1].strip() if users else ""
        if not heard:
            yield "I did not hear anything."
            return
        yield f'You said: "{heard}". '
        yield f"That was turn {len(users)} of this conversation."
