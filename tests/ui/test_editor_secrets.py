"""The dashboard's graph editor reads no environment: a `${OPENAI_API_KEY}` typed into it is
refused by name, and the key is in nothing the page shows."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User, user_simulation

from flow.testing.servers import voicegraph
from ui.dashboard import Dashboard

pytestmark = pytest.mark.timeout(60)

KEY = "sk-proj-Zq9UvT3xLm8pRw2Ks7YbNc4Hd6Fg1Je5"

LEAKY = """version: 1
extends: default
name: "${OPENAI_API_KEY}"
nodes:
  llm: {type: "${OPENAI_API_KEY}"}
  tts: {params: {provider: "${OPENAI_API_KEY:-piper}", voice: "${VOICEGRAPH_VOICE}"}}
"""


async def test_the_editor_names_the_variable_and_never_shows_the_key() -> None:
    async with voicegraph("offline", env={"OPENAI_API_KEY": KEY, "VOICEGRAPH_VOICE": "voice-value-77"}) as srv:
        dash = Dashboard(srv.server, srv.url)
        before = srv.server.spec
        async with user_simulation(root=dash.root) as user:
            user: User
            await user.open("/")
            editor = user.find(ui.codemirror).elements.pop()
            editor.set_value(LEAKY)
            user.find("Apply").click()
            await user.should_see("problem(s): not applicable", retries=50)
            await user.should_see("${OPENAI_API_KEY} in 'type'", retries=50)
            await user.should_see("${OPENAI_API_KEY}: a graph may read only", retries=50)
            await user.should_see("VOICEGRAPH_VOICE has no default", retries=50)  # no env here
            shown = [label.text for label in user.find(ui.label).elements]
            shown += [d["attributes"]["title"] for d in editor.decorations]
            assert KEY not in "\n".join(shown) and "voice-value-77" not in "\n".join(shown)
            assert srv.server.spec is before
