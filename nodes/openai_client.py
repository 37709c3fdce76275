"""The OpenAI settings and the one `AsyncOpenAI` client the openai providers share.

Read from the environment the server was started with (`Settings.env`, `.env` included), so the
runtime core carries no OpenAI settings of its own. The key is a `SecretStr`: no repr, log line or
error message shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from flow.contract.resources import Resources

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class OpenAISettings(BaseModel):
    """`OPENAI_*` environment variables (names are a user contract: see the README)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    """Sent only when set: a local compatible server needs none."""
    base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    """A compatible server (Ollama, vLLM, the test stub); None: api.openai.com."""
    timeout_s: float = Field(30.0, gt=0, alias="OPENAI_TIMEOUT")
    """Per-call timeout in seconds (the SDK's default is ten minutes: too long for a turn)."""
    max_retries: int = Field(1, ge=0, le=5, alias="OPENAI_MAX_RETRIES")
    """Retries per call; each one adds to the user's wait."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpenAISettings:
        """The `OPENAI_*` entries of `env`; an empty value counts as unset."""
        values = {k: v for k, v in env.items() if k.startswith("OPENAI_") and v}
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ValueError(f"invalid OpenAI settings: {problems}") from err

    @property
    def configured(self) -> bool:
        """Whether OpenAI (or a compatible server) is configured: a key, or a base URL."""
        return bool(self.api_key and self.api_key.get_secret_value()) or bool(self.base_url)


def openai_settings(resources: Resources) -> OpenAISettings:
    """The OpenAI settings of the environment `resources` was built from (read once)."""
    return resources.shared("openai.settings", lambda: OpenAISettings.from_env(resources.settings.env))


def openai_client(resources: Resources) -> AsyncOpenAI:
    """The process's one `AsyncOpenAI` (one connection pool), with real-time timeouts and retries.

    It speaks HTTP through the SDK's aiohttp transport (`nodes.openai_http` says why).
    `Resources.aclose()` closes it at shutdown.
    """

    s = openai_settings(resources)  # outside the factory: `shared` holds a non-reentrant lock

    def build() -> AsyncOpenAI:
        from openai import AsyncOpenAI

        from nodes.openai_http import http_client

        return AsyncOpenAI(
            api_key=s.api_key.get_secret_value() if s.api_key else "not-needed",
            base_url=s.base_url or None,
            timeout=s.timeout_s,
            max_retries=s.max_retries,
            http_client=http_client(s.timeout_s),
        )

    return resources.shared("openai.client", build)


def call_options(timeout_s: float, **headers: str) -> dict[str, Any]:
    """Request options for the SDK's generic `AsyncOpenAI.post`, as its endpoint methods set them.

    The providers call `post` rather than `chat.completions.create`, `audio.transcriptions.create`
    and `audio.speech.create`: those re-walk the request against typed-dict schemas and build
    pydantic models of the answer (one per streamed chat token), which was most of a turn's CPU
    under the bench's burst (`voicegraph bench --profile burst`). The SDK still builds the request,
    authenticates (`security`), retries, maps HTTP and connection errors, and decodes the SSE.
    """
    options: dict[str, Any] = {"timeout": timeout_s, "security": {"bearer_auth": True}}
    if headers:
        options["headers"] = headers
    return options
