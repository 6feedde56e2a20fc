"""The notebooks of notebooks/ execute at the CI scale and show their figures (issue 7).

The jupytext percent-format files `notebooks/NN_*.py` are the notebooks' only source. Each is
converted in memory to a notebook, executed top to bottom in a fresh IPython kernel with
OJRS_NB_SCALE=ci (the parameters cell reads it; papermill users pass `-p SCALE ci` instead), and
checked for errors and for the PNG figures it must show. Set OJRS_NB_EXPORT=DIR to keep the
executed .ipynb files and their figures (DIR/<notebook>/fig_NN.png) for a look.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
# figures each notebook must show (its plt.show() calls at the CI scale)
MIN_FIGURES = {"01_quick_start": 4, "02_training": 4, "03_paper_in_miniature": 4}


def png_outputs(nb: nbformat.NotebookNode) -> list[bytes]:
    """Decoded image/png outputs of the executed code cells, in order."""
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def test_every_notebook_is_listed():
    assert {p.stem for p in NOTEBOOKS} == set(MIN_FIGURES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_source_is_well_formed(path):
    nb = jupytext.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "opens with a story"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "OJRS_NB_SCALE" in tagged[0].source
    # the source survives a round trip through .ipynb unchanged (diff-friendly pairing)
    assert jupytext.writes(jupytext.reads(jupytext.writes(nb, "ipynb"), "ipynb"), "py:percent") == (
        jupytext.writes(nb, "py:percent")
    )


def test_notebook_sources_pass_ruff():
    # CI's `ruff check src tests` does not cover notebooks/, so they are linted here.
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(NB_DIR)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_at_ci_scale(path, tmp_path, monkeypatch):
    monkeypatch.setenv("OJRS_NB_SCALE", "ci")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel then shows figures inline
    nb = jupytext.read(path)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    figs = png_outputs(nb)
    export = os.environ.get("OJRS_NB_EXPORT")
    if export:
        out = Path(export) / path.stem
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{path.stem}.ipynb")
        for k, png in enumerate(figs):
            (out / f"fig_{k:02d}.png").write_bytes(png)
    print(f"{path.name}: {seconds:.1f} s, {len(figs)} figures")
    assert len(figs) >= MIN_FIGURES[path.stem], f"{len(figs)} figures"
    assert all(png.startswith(b"\x89PNG") and len(png) > 5000 for png in figs)
