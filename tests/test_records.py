"""The tables of the reproduction pages are written from records kept in the repository.

Each collector of reproduction/sae_joint/ is run on a copy of its folder; the table it writes must
equal the committed one byte for byte, so a table cannot cite records that a clean checkout
lacks (the run records were once caught by the .gitignore rule for runs/) or that changed
after it was written.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "reproduction" / "sae_joint"


@pytest.mark.parametrize(
    ("script", "table"),
    [
        ("collect_runs.py", "runs.md"),
        ("collect_study.py", "study.md"),
        ("collect_table3.py", "table3_seeds.md"),
    ],
)
def test_committed_table_is_written_from_committed_records(tmp_path, script, table):
    tracked = subprocess.run(
        ["git", "ls-files", "reproduction/sae_joint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    copy = tmp_path / "sae_joint"
    for rel in tracked.stdout.split():  # the files a clean clone has, nothing else
        dst = copy / Path(rel).relative_to("reproduction/sae_joint")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    expected = (copy / table).read_bytes()
    (copy / table).unlink()
    p = subprocess.run(
        [sys.executable, str(copy / script)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert (copy / table).read_bytes() == expected, f"{table} differs from what {script} writes"
