"""Choosing a provider by name, with `auto` meaning OpenAI when configured, offline otherwise.

Checked when a graph loads (before any audio flows), so a missing extra or a missing API key is
an error naming the node, not a failure on the first utterance. The first `auto` of a process
logs which way it went and how to switch, so `voicegraph serve` tells the user at start-up.
"""

from __future__ import annotations

import importlib.util
import logging

from flow.contract.resources import Resources
from nodes.openai_client import openai_settings

log = logging.getLogger("voicegraph.providers")

OFFLINE_HINT = "install the offline extra: pip install 'voicegraph[offline]'"
OPENAI_HINT = "set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"


def resolve(provider: str, resources: Resources, offline: str) -> str:
    """`auto` → `openai` if a key or base URL is set, else the role's offline provider."""
    if provider != "auto":
        return provider
    online = openai_settings(resources).configured
    resources.shared("provider_choice.hint", lambda: _log_hint(online))
    return "openai" if online else offline


def require(provider: str, resources: Resources, modules: dict[str, tuple[str, ...]]) -> None:
    """Raise ValueError if `provider` can't run here (module missing, or no OpenAI config)."""
    if provider == "openai" and not openai_settings(resources).configured:
        raise ValueError(f"provider 'openai' is not configured: {OPENAI_HINT}")
    for module in modules.get(provider, ()):
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"provider {provider!r} needs the {module!r} package: {OFFLINE_HINT}")


def _log_hint(online: bool) -> bool:
    if online:
        log.info("provider auto: OpenAI (OPENAI_API_KEY or OPENAI_BASE_URL is set); unset both to run offline")
    else:
        log.info("provider auto: offline (no OPENAI_API_KEY); to use OpenAI, %s", OPENAI_HINT)
    return True
