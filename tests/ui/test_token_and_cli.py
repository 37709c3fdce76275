"""The dashboard's door: loopback by default, `VOICEGRAPH_TOKEN` required for every page and socket."""

from __future__ import annotations

import aiohttp
import pytest

from flow.testing.servers import serve_process, serve_with_dashboard, voicegraph
from ui.testbench import Testbench, TestbenchError

pytestmark = pytest.mark.timeout(90)


async def test_token_guards_pages_and_websocket_and_login_sets_a_cookie() -> None:
    with serve_with_dashboard({"VOICEGRAPH_TOKEN": "s3cret"}, "--graph", "offline") as (_, ui_url):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # IP host
            async with http.get(ui_url + "/", allow_redirects=False) as r:
                assert r.status == 401 and "needs the server's token" in await r.text()
            async with http.get(ui_url + "/?token=wrong", allow_redirects=False) as r:
                assert r.status == 401 and "Wrong token" in await r.text()
            async with http.get(ui_url + "/_nicegui_ws/socket.io/?EIO=4&transport=polling") as r:
                assert r.status == 401  # NiceGUI's own socket is behind the same door
            async with http.post(ui_url + "/login?next=/", data={"token": "s3cret"}, allow_redirects=False) as r:
                assert r.status == 303 and "s3cret" not in r.headers["set-cookie"]
            async with http.get(ui_url + "/") as r:  # the cookie jar now holds the login
                assert r.status == 200 and "voicegraph" in await r.text()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:  # never logged in
            for elsewhere in ("//evil.example", "/%5Cevil.example", "https://evil.example"):  # no open redirect
                async with http.post(ui_url + "/login?next=" + elsewhere, data={"token": "s3cret"},
                                     allow_redirects=False) as r:
                    assert (r.status, r.headers.get("location")) == (303, "/"), elsewhere


async def test_dashboard_binds_to_loopback_and_no_ui_serves_none() -> None:
    with serve_with_dashboard({}, "--graph", "offline") as (url, ui_url):
        assert ui_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(ui_url + "/") as r:
            assert r.status == 200 and "Sessions" in await r.text()
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as r:
            assert (await r.json())["graph"]["name"] == "offline"
    with serve_process({}, "--graph", "offline") as url:  # serve_process passes --no-ui
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as r:
            assert r.status == 200


async def test_testbench_needs_the_token_like_any_client() -> None:
    async with voicegraph("offline", token="t0ken") as srv:
        with pytest.raises(TestbenchError, match="cannot connect"):
            await Testbench(srv.url, srv.server.resources).connect()
        bench = Testbench(srv.url, srv.server.resources, token="t0ken")
        sid = await bench.connect()
        assert sid in srv.server.sessions and srv.server.sessions[sid].peer["label"] == "testbench"
        with pytest.raises(TestbenchError, match="not audio"):
            await bench.inject_file(b"this is not audio at all")
        await bench.close()
