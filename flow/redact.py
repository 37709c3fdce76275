"""Hiding secrets in text that leaves the server: error messages for clients, log lines.

A provider (or a proxy in front of it) may answer a failed call with a body that echoes the
request's `Authorization` header; such text is passed on as an error message. `redact` removes
what looks like a credential — a bearer token, an `Authorization:` or `api-key` value, an
OpenAI-style `sk-…` key — and, literally, the value of every secret-looking variable of the
server's environment (`OPENAI_API_KEY`, `VOICEGRAPH_TOKEN`, `*_SECRET`, …), whatever its format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

REDACTED = "[redacted]"

MIN_SECRET_CHARS = 8
"""Shorter values of secret variables are not replaced literally (a 3-character "key" would blank
out every word that contains it); the patterns below still catch them where they are labelled."""

_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(?:_|$)",
                          re.IGNORECASE)
_PATTERNS = (
    # `Authorization: Bearer x`, `"authorization": "Basic x"`, `proxy-authorization=x`
    re.compile(r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?"
               r"[^\s\"',;}\]]+"),
    re.compile(r"(?i)(\b(?:x-)?api[-_]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}\]]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),  # a token, not "the bearer of"
    re.compile(r"()\bsk-[A-Za-z0-9_-]{6,}"),
)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential (`OPENAI_API_KEY`)."""
    return _SECRET_NAME.search(name) is not None


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values of `env`'s secret-looking variables, longest first (so none hides a longer one)."""
    found = {v for k, v in env.items() if v and len(v) >= MIN_SECRET_CHARS and is_secret_name(k)}
    return sorted(found, key=len, reverse=True)


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` without credentials: labelled ones by pattern, `env`'s secret values literally."""
    for value in secret_values(env) if env else ():
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message, traceback and all) goes through `redact`."""

    def __init__(self, fmt: str, env: Mapping[str, str] | None = None) -> None:
        super().__init__(fmt)
        self.env = dict(env or {})

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.env)
