"""Save as: into the graphs directory, never over a bundled graph, over a user's file only when asked."""

from __future__ import annotations

import pytest

from ui.graph_files import SaveError, bundled_dir, graphs_dir, save_graph


def test_save_as_refuses_bad_names_existing_files_and_bundled_graphs(tmp_path) -> None:
    path = save_graph("version: 1", tmp_path, "mine")
    assert path == tmp_path / "mine.yaml" and path.read_text() == "version: 1\n"
    with pytest.raises(SaveError, match="exists"):
        save_graph("version: 2", tmp_path, "mine.yaml")
    assert save_graph("version: 2", tmp_path, "mine", replace=True).read_text() == "version: 2\n"
    for bad in ("../escape", "a/b", "", ".hidden", "x" * 80):
        with pytest.raises(SaveError, match="not a graph file name"):
            save_graph("version: 1", tmp_path, bad)
    before = (bundled_dir() / "default.yaml").read_text()
    with pytest.raises(SaveError, match="bundled"):
        save_graph("version: 1", bundled_dir(), "default", replace=True)
    assert (bundled_dir() / "default.yaml").read_text() == before
    assert list(tmp_path.glob(".*.tmp")) == []


def test_the_graphs_directory(tmp_path) -> None:
    assert graphs_dir({"VOICEGRAPH_GRAPHS_DIR": str(tmp_path)}, "x") == tmp_path
    mine = tmp_path / "g.yaml"
    mine.write_text("version: 1")
    assert graphs_dir({}, str(mine)) == tmp_path
    assert graphs_dir({}, str(bundled_dir() / "default.yaml")).as_posix() == "graphs"
