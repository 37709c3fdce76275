"""Turning the openai SDK's exceptions into `ProviderError`s that are safe to show a client.

The messages keep the status and the server's own words (at most `MAX_DETAIL_CHARS` of them) but
never the key or request headers: a proxy's 401 may echo `Authorization: Bearer sk-…` in its body,
so the words go through `flow.redact` (and `Node.fail` redacts once more, with the configured key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import openai

from flow.contract.providers import ProviderError
from flow.redact import redact

MAX_DETAIL_CHARS = 300


def _cut(text: str) -> str:
    """At most `MAX_DETAIL_CHARS`, ending at a word: no cut-off half of a key is left for a later
    redaction to miss."""
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return text[:MAX_DETAIL_CHARS].rsplit(" ", 1)[0] + " …"


@contextlib.contextmanager
def provider_errors(what: str) -> Iterator[None]:
    """Wrap SDK failures of one call (`what`, e.g. "transcription") as ProviderError."""
    try:
        yield
    except openai.APITimeoutError as err:
        raise ProviderError(f"{what} timed out") from err
    except openai.APIStatusError as err:
        detail = ""
        body = err.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            detail = str(inner.get("message", "")) if isinstance(inner, dict) else str(inner)
            detail = _cut(redact(detail))
        raise ProviderError(f"{what} failed: HTTP {err.status_code} {detail}".strip()) from err
    except openai.APIConnectionError as err:
        raise ProviderError(f"{what} failed: cannot reach the provider") from err
    except openai.OpenAIError as err:
        raise ProviderError(f"{what} failed: {type(err).__name__}") from err
    except ValueError as err:  # a 200 whose body is not the JSON it claims (the SDK lets it through)
        raise ProviderError(f"{what} failed: the provider's answer was malformed") from err
