"""`provider: auto` follows the server's environment; `openai` without configuration fails at load."""

from __future__ import annotations

import logging

import pytest

from flow.config import Settings
from flow.contract.resources import Resources
from nodes.provider_choice import require, resolve

KEY = "sk-secret-4242"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "pocketsphinx"),
    ({"OPENAI_API_KEY": ""}, "pocketsphinx"),
    ({"OPENAI_API_KEY": KEY}, "openai"),
    ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, "openai"),
])
def test_auto_resolves_by_the_environment(env, expected, caplog) -> None:
    caplog.set_level(logging.INFO, logger="voicegraph.providers")
    r = Resources(Settings(env=env))
    assert resolve("auto", r, "pocketsphinx") == expected
    assert resolve("auto", r, "pocketsphinx") == expected
    [hint] = caplog.messages  # once per process, saying how to switch
    assert ("unset both to run offline" if expected == "openai" else "set OPENAI_API_KEY") in hint
    assert KEY not in caplog.text


def test_explicit_names_are_kept_whatever_the_environment() -> None:
    assert resolve("piper", Resources(Settings(env={"OPENAI_API_KEY": KEY})), "piper") == "piper"
    assert resolve("openai", Resources(Settings()), "piper") == "openai"


def test_openai_without_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="set OPENAI_API_KEY"):
        require("openai", Resources(Settings()), {})
    require("openai", Resources(Settings(env={"OPENAI_API_KEY": KEY})), {})
    with pytest.raises(ValueError, match="needs the 'no_such_module_xyz' package"):
        require("thing", Resources(Settings()), {"thing": ("no_such_module_xyz",)})
