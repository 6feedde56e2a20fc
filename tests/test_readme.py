"""Every command-line recipe of the README runs as written (they are toy-sized already).

The `bash` blocks of the README's "Recipes" section are run line by line, in order, in one
temporary directory (a recipe may use the run an earlier one wrote), with the console scripts
of this environment on the PATH. The quick start's block installs the package and is left to
`.ci/run` and benchmarks/bench_quick_start.py; the Python blocks run in tests/test_docs.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def recipes() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Recipes") : text.index("\n## ", text.index("## Recipes") + 1)]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.split("  # ")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_the_recipes_are_found():
    cmds = recipes()
    assert len(cmds) >= 8
    tools = ("ojrs-train", "ojrs-decide", "ojrs-train-any", "ojrs-reproduce", "ojrs-aggregate")
    for tool in (*tools, "ojrs-bench"):
        assert any(c.startswith(tool + " ") for c in cmds), tool


def test_every_recipe_runs(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["OJRS_PROGRESS"] = "0"
    for cmd in recipes():
        p = subprocess.run(
            cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert p.returncode == 0, f"{cmd}\n{p.stdout[-1500:]}\n{p.stderr[-3000:]}"
    runs = tmp_path / "runs"
    for run in ("tiny", "any"):
        assert (runs / run / "model.msgpack").is_file() and (runs / run / "summary.json").is_file()
    with np.load(tmp_path / "decisions.npz") as z:
        assert z["a"].shape == (4, 6) and np.all(np.isfinite(z["latency"]))
    assert sorted(p.name for p in (runs / "seeds").iterdir() if p.is_dir()) == ["0", "1"]
    assert (runs / "paper" / "tables" / "results.md").is_file()
