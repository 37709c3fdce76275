"""The worked example of docs/writing-a-node.md: pip-installed from examples/, listed, served, answering.

The package is installed with pip (no index, no build isolation) into a directory of its own,
which the served process and the CLI get on PYTHONPATH: that is how an installed plugin looks to
voicegraph (a package and its dist-info with the `voicegraph.nodes` entry point), without
touching the environment the other tests run in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flow.testing.servers import served

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "faq_node"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    src = tmp_path_factory.mktemp("src") / "faq_node"  # a copy: a build leaves files beside the sources
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", "--target", str(target), str(src)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (target / "voicegraph_faq-0.1.0.dist-info" / "entry_points.txt").exists()
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(target) + (os.pathsep + path if path else "")}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flow.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env})


def test_nodes_lists_the_installed_plugin_with_its_package(plugin_env: dict[str, str]) -> None:
    run = cli(plugin_env, "nodes")
    assert run.returncode == 0, run.stderr
    assert "\nfaq  (voicegraph-faq 0.1.0; voicegraph_faq.faq:Faq)\n" in run.stdout
    assert "\nturn_taker  (voicegraph " in run.stdout
    one = cli(plugin_env, "nodes", "faq").stdout
    assert "answers: dict[str, str] = required  (length ≥ 1)" in one
    assert "reply  ReplyText" in one and "every turn it has no answer for (to responder.turn)" in one
    assert "faq" not in cli(plugin_env, "nodes", "--builtin").stdout.split("\n\n")[0]


def test_the_example_graph_passes_strict_check_only_with_the_plugin(plugin_env: dict[str, str]) -> None:
    graph = str(EXAMPLE / "faq.yaml")
    run = cli(plugin_env, "check", "--strict", graph)
    assert run.returncode == 0, run.stdout
    without = cli({}, "check", graph)
    assert without.returncode == 1 and "unknown node type 'faq': is a plugin missing?" in without.stdout


async def test_the_plugin_answers_through_a_served_process(plugin_env: dict[str, str], clients) -> None:
    with served(plugin_env, "--no-ui", "--graph", str(EXAMPLE / "faq.yaml"), timeout=120) as server:
        c = await clients(server.url)
        await c.emit("text-message", "What are your opening hours?")
        known = await c.wait("ai-response", timeout=60)
        assert known["text"] == "We are open from nine to five, Monday to Friday." and known["audio"]
        await c.wait("ai-typing", lambda t: t["isTyping"] is False, timeout=30)

        await c.emit("text-message", "Tell me a joke")
        other = await c.wait("ai-response", lambda r: r["id"] != known["id"], timeout=60)
        assert other["text"].startswith('You said: "Tell me a joke".')  # the offline responder got it
        assert c.of("error") == []


def test_the_dashboard_lists_node_types_with_the_plugin(plugin_env: dict[str, str], tmp_path: Path) -> None:
    """The dashboard's node reference (`/nodes`, linked from the header) in a real headless Chromium."""
    from selenium.webdriver.common.by import By

    from flow.testing.servers import serve_with_dashboard
    from tests.ui.browser import chromium, wait_until

    with serve_with_dashboard(plugin_env, "--graph", str(EXAMPLE / "faq.yaml")) as (_url, ui_url), \
            chromium() as d:
        d.get(ui_url)
        link = wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "[data-testid=nodes-link]"), what="nodes link",
                          driver=d, shot=tmp_path / "dashboard.png")[0]
        assert link.get_attribute("href").endswith("/nodes")
        d.get(ui_url + "/nodes")
        page = wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "[data-testid=node-reference]"),
                          what="node reference", driver=d, shot=tmp_path / "nodes.png")[0]
        wait_until(lambda: "voicegraph-faq 0.1.0" in page.text, what="the plugin on the page", driver=d,
                   shot=tmp_path / "nodes.png")
        headings = [h.text for h in page.find_elements(By.TAG_NAME, "h2")]
        assert {"faq", "silence_finalizer", "interrupt_gate", "client", "Message types"} <= set(headings)
        cells = [c.text for c in page.find_elements(By.TAG_NAME, "td")]
        assert "silence_ms" in cells and "≥ 100, ≤ 5000" in cells and "answers" in cells
        d.save_screenshot(str(tmp_path / "nodes.png"))
