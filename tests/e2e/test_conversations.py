"""Resumable conversations: the `conversation` event, `auth: {conversationId}`, and a SQLite store
that outlives the server process."""

from __future__ import annotations

from flow.testing.client import Recorder
from flow.testing.servers import serve_process, voicegraph

NO_SPEECH = """
version: 1
extends: default
name: text_only
nodes:
  llm: {params: {provider: echo}}
remove_nodes: [tts]
edges:
  - llm.reply -> gate.response
"""


async def _turn(c: Recorder, text: str, n: int) -> str:
    await c.emit("text-message", text)
    return (await c.wait("ai-response", count=n))["text"]


async def test_a_reconnecting_client_continues_its_conversation(clients) -> None:
    async with voicegraph(graph_text=NO_SPEECH) as srv:
        first = await clients(srv.url)
        told = await first.conversation()
        assert told["resumed"] is False and len(told["conversationId"]) == 22
        assert "turn 1 of" in await _turn(first, "one", 1)
        assert "turn 2 of" in await _turn(first, "two", 2)
        await first.close()

        again = await clients(srv.url, {"conversationId": told["conversationId"]})
        assert await again.conversation() == {"conversationId": told["conversationId"], "resumed": True}
        assert await _turn(again, "three", 1) == 'You said: "three". That was turn 3 of this conversation.'

        other = await clients(srv.url)  # a client of its own: a conversation of its own
        assert (await other.conversation())["conversationId"] != told["conversationId"]
        assert "turn 1 of" in await _turn(other, "hello", 1)


async def test_unknown_or_malformed_ids_start_a_new_conversation(clients) -> None:
    async with voicegraph(graph_text=NO_SPEECH) as srv:
        for wanted in ("A" * 22, "../../etc", 12345, None):
            c = await clients(srv.url, {"conversationId": wanted})
            told = await c.conversation()
            assert told["resumed"] is False and told["conversationId"] != wanted
            assert "turn 1 of" in await _turn(c, "hi", 1)  # the session is served as usual


async def test_with_a_token_only_a_client_with_it_resumes(clients) -> None:
    async with voicegraph(graph_text=NO_SPEECH, token="s3cret-token") as srv:
        c = await clients(srv.url, {"token": "s3cret-token"})
        cid = (await c.conversation())["conversationId"]
        await _turn(c, "one", 1)
        await c.close()
        thief = Recorder()
        try:
            await thief.connect(srv.url, {"conversationId": cid})
        except Exception as err:
            assert "unauthorized" in str(err) or "Connection" in type(err).__name__
        else:
            raise AssertionError("a client without the token was let in")
        finally:
            await thief.close()
        back = await clients(srv.url, {"token": "s3cret-token", "conversationId": cid})
        assert (await back.conversation())["resumed"] is True
        assert "turn 2 of" in await _turn(back, "two", 1)


async def test_a_sqlite_conversation_survives_a_server_restart(tmp_path) -> None:
    graph = tmp_path / "text_only.yaml"
    graph.write_text(NO_SPEECH)
    env = {"VOICEGRAPH_STORE": f"sqlite:///{tmp_path}/conversations.db", "VOICEGRAPH_PRELOAD": "0"}
    with serve_process(env, "--graph", str(graph)) as url:
        c = await Recorder().connect(url)
        cid = (await c.conversation())["conversationId"]
        assert "turn 1 of" in await _turn(c, "before the restart", 1)
        await c.close()  # the session closes and waits for its last save
    with serve_process(env, "--graph", str(graph)) as url:  # a new process, the same file
        c = await Recorder().connect(url, {"conversationId": cid})
        try:
            assert (await c.conversation())["resumed"] is True
            assert await _turn(c, "after it", 1) == 'You said: "after it". That was turn 2 of this conversation.'
        finally:
            await c.close()


async def test_a_resumed_conversation_keeps_what_the_user_heard_of_an_interrupted_reply(stub, clients) -> None:
    stub.reply = "One sentence here. Then another sentence. And a third one to finish. " * 2
    stub.chat.token_delay = 0.1
    stub.tts.latency = 0.05
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        cid = (await c.conversation())["conversationId"]
        await c.emit("text-message", "talk for a while")
        first = await c.wait("ai-response-chunk")
        await c.emit("interrupt", {"responseId": first["id"]})
        await c.wait("response-cancelled")
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        await c.close()

        again = await clients(srv.url, {"conversationId": cid})
        assert (await again.conversation())["resumed"] is True
        stub.chat.token_delay = 0.0
        await again.emit("text-message", "what did you say?")
        await again.wait("ai-response")
        roles = [(m["role"], m["content"]) for m in stub.of("chat")[-1].body["messages"]]
        assert [r for r, _ in roles] == ["system", "user", "assistant", "user"]
        assert roles[1][1] == "talk for a while" and roles[3][1] == "what did you say?"
        heard = roles[2][1]
        assert heard.startswith(first["text"]) and heard.endswith("[interrupted]")
