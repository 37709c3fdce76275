"""OpenAI settings come from the server's environment; one client per process, closed at shutdown."""

from __future__ import annotations

import logging

import pytest

from flow.config import Settings
from flow.contract.resources import Resources
from nodes.openai_client import OpenAISettings, openai_client, openai_settings

KEY = "sk-secret-4242"


def test_settings_read_the_env_names_of_the_readme() -> None:
    s = OpenAISettings.from_env({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
                                 "OPENAI_TIMEOUT": "2.5", "OPENAI_MAX_RETRIES": "0", "PORT": "1"})
    assert (s.base_url, s.timeout_s, s.max_retries) == ("http://127.0.0.1:1/v1", 2.5, 0)
    assert s.api_key is not None and s.api_key.get_secret_value() == KEY and s.configured
    assert KEY not in repr(s) and KEY not in str(s) and KEY not in str(s.model_dump())


def test_defaults_and_empty_values_count_as_unset() -> None:
    s = OpenAISettings.from_env({"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "OPENAI_TIMEOUT": ""})
    assert (s.api_key, s.base_url, s.timeout_s, s.max_retries) == (None, None, 30.0, 1)
    assert not s.configured
    assert OpenAISettings.from_env({"OPENAI_BASE_URL": "http://localhost:11434/v1"}).configured  # no key needed


def test_a_bad_value_names_the_variable_not_the_key() -> None:
    with pytest.raises(ValueError, match="OPENAI_TIMEOUT") as err:
        OpenAISettings.from_env({"OPENAI_API_KEY": KEY, "OPENAI_TIMEOUT": "soon"})
    assert KEY not in str(err.value)


async def test_one_client_per_process_with_the_settings_and_closed_by_aclose(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    r = Resources(Settings(env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                "OPENAI_TIMEOUT": "4", "OPENAI_MAX_RETRIES": "2"}))
    client = openai_client(r)
    assert openai_client(r) is client and openai_settings(r).timeout_s == 4
    assert (str(client.base_url), client.timeout, client.max_retries) == ("http://127.0.0.1:9/v1/", 4, 2)
    assert client.api_key == KEY and KEY not in repr(r.settings)
    await r.aclose()
    assert client.is_closed()
    assert KEY not in caplog.text
