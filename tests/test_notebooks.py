"""Every notebook in notebooks/ runs top to bottom without an error, and looks right saved.

"Looks right": every progress widget ends full and not red (when ipywidgets is installed),
nothing on stderr, and no cell shows the same figure twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_folder_is_not_empty():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_without_error(path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o.text for o in outputs if o.get("name") == "stderr"]
    states = notebook.metadata.get("widgets", {})
    states = states.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    bars = [m["state"] for m in states.values() if m["model_name"] == "FloatProgressModel"]
    assert [bar for bar in bars if bar["value"] != bar["max"]] == []
    assert [bar for bar in bars if bar.get("bar_style") == "danger"] == []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert len(images) <= 1, cell.source
