"""What a notebook user sees: a notebook executed with nbclient, read back as saved.

With ipywidgets, every epoch's tqdm widget ends full and not red, and the Keras text log stays;
without it (an `ipywidgets` that fails to import, first on the kernel's `PYTHONPATH`), no
warning at `import kfit` and a bounded number of text redraws per epoch.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EPOCHS = 3
STEPS = 25

SETUP = """
import warnings
warnings.simplefilter("always")
import numpy as np
import torch
from torch import nn
import kfit
import kfit.progress
# No waiting on the clock in a test. A widget draws at the first step and then not again
# (as a fast epoch does): it must still end full. A text bar redraws whenever it may.
kfit.progress.NOTEBOOK_INTERVAL = 3600
kfit.progress.KERNEL_TEXT_INTERVAL = 0
torch.manual_seed(0)
x = np.random.rand(100, 3).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = kfit.Model(nn.Linear(3, 1))
model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
print("widgets:", kfit.progress.in_notebook())
"""
FIT = f"history = model.fit(x, y, batch_size=4, epochs={EPOCHS}, validation_split=0.2)"
EVALUATE = "model.evaluate(x, y, batch_size=4)"
PREDICT = "model.predict(x, batch_size=4).shape"
INTERRUPT = """
class CtrlC(kfit.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.model.epochs_completed == 1 and batch == 5:
            raise KeyboardInterrupt

fresh = kfit.Model(nn.Linear(3, 1))
fresh.compile(optimizer="sgd", loss="mse")
try:
    fresh.fit(x, y, batch_size=4, epochs=3, callbacks=[CtrlC()])
except KeyboardInterrupt:
    print("completed:", fresh.epochs_completed, len(fresh.history.history["loss"]))
"""
INTERRUPT_EVALUATION = """
class CtrlCAt5(kfit.callbacks.Callback):
    def on_test_batch_end(self, batch, logs=None):
        if batch == 5:
            raise KeyboardInterrupt

    on_predict_batch_end = on_test_batch_end

for run in (lambda: model.evaluate(x, y, batch_size=4, callbacks=[CtrlCAt5()]),
            lambda: model.predict(x, batch_size=4, callbacks=[CtrlCAt5()])):
    try:
        run()
    except KeyboardInterrupt:
        print("stopped")
"""
CELLS = {
    "setup": SETUP,
    "fit": FIT,
    "evaluate": EVALUATE,
    "predict": PREDICT,
    "ctrl_c": INTERRUPT,
    "ctrl_c_evaluation": INTERRUPT_EVALUATION,
}
FINAL_LINE = re.compile(r"\d+/\d+ \[={30}\] - \d+s \d+(s|ms|us)/step")


def _run(tmp_path, widgets: bool) -> dict[str, nbformat.NotebookNode]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS.values()]
    env = dict(os.environ)
    if not widgets:
        blocker = tmp_path / "no_ipywidgets" / "ipywidgets"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text("raise ImportError('ipywidgets hidden by the test')\n")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(blocker.parent), env.get("PYTHONPATH")])
        )
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)
    nbformat.write(notebook, tmp_path / "executed.ipynb")
    return dict(zip(CELLS, notebook.cells, strict=True)), notebook


def _text(cell) -> str:
    """The cell's stream output as a notebook shows it: a `\\r` redraw replaces its line."""
    raw = "".join(o.text for o in cell.outputs if o.output_type == "stream")
    return "\n".join(line.split("\r")[-1] for line in raw.split("\n"))


def _widget_ids(cell) -> list[str]:
    return [
        o.data["application/vnd.jupyter.widget-view+json"]["model_id"]
        for o in cell.outputs
        if o.output_type == "display_data"
        and "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]


def _progress_states(notebook, cell) -> list[dict]:
    """The saved state of the progress bar inside each widget the cell displayed."""
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = []
    for model_id in _widget_ids(cell):
        for child in states[model_id]["state"]["children"]:
            state = states[child.removeprefix("IPY_MODEL_")]["state"]
            if "max" in state:
                bars.append(state)
    return bars


@pytest.fixture(scope="module")
def with_widgets(tmp_path_factory):
    pytest.importorskip("ipywidgets")
    return _run(tmp_path_factory.mktemp("widgets"), widgets=True)


@pytest.fixture(scope="module")
def without_widgets(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("text"), widgets=False)


def _assert_no_errors_or_warnings(cells):
    for name, cell in cells.items():
        assert not [o for o in cell.outputs if o.output_type == "error"], name
        stderr = "".join(o.text for o in cell.outputs if o.get("name") == "stderr")
        assert "Warning" not in stderr, (name, stderr)


@pytest.mark.parametrize("name", ["fit", "evaluate", "predict"])
def test_widget_bars_end_full_and_not_red(with_widgets, name):
    cells, notebook = with_widgets
    bars = _progress_states(notebook, cells[name])

    assert bars  # the widget was drawn at all
    for bar in bars:
        assert bar["value"] == bar["max"]
        assert bar.get("bar_style", "") != "danger"


def test_widget_bars_one_per_epoch_and_validation(with_widgets):
    cells, notebook = with_widgets

    assert len(_progress_states(notebook, cells["fit"])) == EPOCHS


def test_widgets_keep_the_keras_text_log(with_widgets):
    cells, _ = with_widgets
    _assert_no_errors_or_warnings(cells)
    lines = _text(cells["fit"]).strip().split("\n")

    assert "widgets: True" in _text(cells["setup"])
    assert lines[0::2] == [f"Epoch {e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    for line in lines[1::2]:
        assert FINAL_LINE.match(line), line
        assert " - val_loss: " in line
    assert FINAL_LINE.match(_text(cells["evaluate"]).strip())


def test_ctrl_c_leaves_one_red_bar_and_the_completed_epochs(with_widgets):
    cells, notebook = with_widgets
    bars = _progress_states(notebook, cells["ctrl_c"])
    text = _text(cells["ctrl_c"])

    assert [bar.get("bar_style", "") == "danger" for bar in bars] == [False, True]
    assert bars[1]["value"] == 5  # the interrupting callback runs before the logger
    assert " 5/25 - interrupted" in text
    assert "completed: 1 1" in text


def test_ctrl_c_in_evaluate_and_predict_leaves_their_bars_red(with_widgets):
    cells, notebook = with_widgets
    bars = _progress_states(notebook, cells["ctrl_c_evaluation"])

    assert [bar.get("bar_style", "") for bar in bars] == ["danger", "danger"]
    assert [bar["value"] for bar in bars] == [5, 5]  # the interrupting callback runs first
    assert _text(cells["ctrl_c_evaluation"]).count(" 5/25 - interrupted") == 2


def test_without_widgets_ctrl_c_in_evaluate_and_predict_marks_their_lines(without_widgets):
    cells, _ = without_widgets
    lines = _text(cells["ctrl_c_evaluation"]).strip().split("\n")

    assert lines[1::2] == ["stopped", "stopped"]
    for line in lines[0::2]:
        assert re.fullmatch(r"\s*5/25 \[=+\.+\] - interrupted", line.rstrip()), line


def test_without_widgets_import_does_not_warn(without_widgets):
    cells, _ = without_widgets

    assert "widgets: False" in _text(cells["setup"])
    _assert_no_errors_or_warnings(cells)


def test_without_widgets_a_bounded_number_of_outputs_per_epoch(without_widgets):
    cells, _ = without_widgets
    from kfit.progress import KERNEL_TEXT_UPDATES

    redraws = "".join(o.text for o in cells["fit"].outputs if o.output_type == "stream")
    # Each redraw starts with a carriage return; the final line too.
    assert 0 < redraws.count("\r") <= EPOCHS * (KERNEL_TEXT_UPDATES + 1)
    lines = _text(cells["fit"]).strip().split("\n")
    assert lines[0::2] == [f"Epoch {e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    for line in lines[1::2]:
        assert FINAL_LINE.match(line), line


def test_without_widgets_ctrl_c_marks_the_line_interrupted(without_widgets):
    cells, _ = without_widgets
    lines = _text(cells["ctrl_c"]).strip().split("\n")

    assert lines[-2].rstrip().endswith(" - interrupted")
    assert lines[-1] == "completed: 1 1"


def test_kernel_python_is_this_python():
    # The kernel spec "python3" must resolve to this environment for the tests above to mean
    # anything about the installed kfit.
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] in (sys.executable, "python", "python3") or os.path.samefile(
        spec.argv[0], sys.executable
    )
