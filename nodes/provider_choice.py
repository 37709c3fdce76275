"""Choosing a provider by name, with `auto` meaning OpenAI when configured, offline otherwise.

Checked when a graph loads (before any audio flows), so a missing extra or a missing API key is
an error naming the node, not a failure on the first utterance.
"""

from __future__ import annotations

import importlib.util

from flow.contract.resources import Resources

OFFLINE_HINT = "install the offline extra: pip install 'voicegraph[offline]'"
OPENAI_HINT = "set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"


def resolve(provider: str, resources: Resources, offline: str) -> str:
    """`auto` → `openai` if a key or base URL is set, else the role's offline provider."""
    if provider != "auto":
        return provider
    return "openai" if resources.settings.has_openai else offline


def require(provider: str, resources: Resources, modules: dict[str, tuple[str, ...]]) -> None:
    """Raise ValueError if `provider` can't run here (module missing, or no OpenAI config)."""
    if provider == "openai" and not resources.settings.has_openai:
        raise ValueError(f"provider 'openai' is not configured: {OPENAI_HINT}")
    for module in modules.get(provider, ()):
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"provider {provider!r} needs the {module!r} package: {OFFLINE_HINT}")
