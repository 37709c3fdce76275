"""Who gets in, and where a login sends them: local paths only; no token-less dashboard off loopback."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from flow.cli import main
from flow.testing.servers import voicegraph
from ui.app import TokenGate, local_path, serve_dashboard
from ui.door import is_loopback, refusal

TOKEN = "s3cret-token"


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example",
                                    "https://evil.example", "evil.example", "", "/ok\\..\\x", "//", "///evil.example"])
def test_login_never_sends_the_browser_elsewhere(target: str) -> None:
    assert local_path(target) == "/"


@pytest.mark.parametrize("target", ["/", "/sessions?tab=graph", "/a/b#c", "/%2F%2Fevil.example"])
def test_local_paths_are_kept(target: str) -> None:
    assert local_path(target) == target


async def _call(method: str, path: str, query: str = "", body: bytes = b"") -> tuple[int, dict[bytes, bytes]]:
    """One request through the token gate (to an app it must not reach): status and headers."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        raise AssertionError("the gate let a request without the cookie through")

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": []}
    await TokenGate(app, TOKEN)(scope, receive, send)
    return sent[0]["status"], dict(sent[0].get("headers", []))


async def test_login_redirects_only_to_local_paths() -> None:
    form = f"token={TOKEN}".encode()
    for nxt, expected in (("//evil.example", b"/"), ("/\\evil.example", b"/"), ("https://evil.example", b"/"),
                          ("/sessions?tab=graph", b"/sessions?tab=graph")):
        status, headers = await _call("POST", "/login", "next=" + quote(nxt, safe=""), form)
        assert (status, headers[b"location"]) == (303, expected), nxt
    status, headers = await _call("GET", "//evil.example", f"token={TOKEN}")  # `?token=` on a foreign-looking path
    assert (status, headers[b"location"]) == (303, b"/")
    status, _ = await _call("POST", "/login", "next=/", b"token=wrong")
    assert status == 401


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host) and refusal(host, token=False, insecure=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.20", "10.0.0.1", "dashboard.example"])
def test_any_other_address_needs_a_token_or_insecure(host: str) -> None:
    message = refusal(host, token=False, insecure=False)
    assert message is not None and "VOICEGRAPH_TOKEN" in message and "--insecure-ui" in message
    assert refusal(host, token=True, insecure=False) is None and refusal(host, token=False, insecure=True) is None


def _serve(monkeypatch: pytest.MonkeyPatch, tmp_path, env: dict[str, str], *args: str) -> int:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for var in ("VOICEGRAPH_TOKEN", "VOICEGRAPH_INSECURE_UI", "VOICEGRAPH_UI_HOST", "VOICEGRAPH_UI"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    # a graph file that does not exist: getting past the dashboard check ends there, binding nothing
    return main(["serve", "--port", "0", "--ui-port", "0", "--graph", str(tmp_path / "none.yaml"), *args])


def test_serve_refuses_a_tokenless_dashboard_on_every_interface(
        monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    for env, args in (({}, ("--ui-host", "0.0.0.0")), ({"VOICEGRAPH_UI_HOST": "0.0.0.0"}, ())):
        assert _serve(monkeypatch, tmp_path, env, *args) == 2
        err = capsys.readouterr().err
        assert "refusing to serve the dashboard on 0.0.0.0 without VOICEGRAPH_TOKEN" in err
        assert "cannot serve" not in err
    for env, args in (({}, ("--ui-host", "0.0.0.0", "--insecure-ui")),
                      ({"VOICEGRAPH_INSECURE_UI": "1"}, ("--ui-host", "0.0.0.0")),
                      ({"VOICEGRAPH_TOKEN": TOKEN}, ("--ui-host", "0.0.0.0")),
                      ({}, ("--ui-host", "0.0.0.0", "--no-ui"))):
        assert _serve(monkeypatch, tmp_path, env, *args) == 2  # past the check: the missing graph stops it
        err = capsys.readouterr().err
        assert "refusing" not in err and "cannot serve" in err, (env, args)


async def test_serve_dashboard_refuses_before_binding() -> None:
    async with voicegraph("offline") as srv:
        with pytest.raises(PermissionError, match="--insecure-ui"):
            await serve_dashboard(srv.server, srv.url, "0.0.0.0", 0)
