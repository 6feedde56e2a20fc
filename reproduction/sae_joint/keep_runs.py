"""Keep the record of `ojrs-train` runs (config, overrides, summary) under runs/<name>/.

python reproduction/sae_joint/keep_runs.py /tmp/runs/j_m3_w001 ...   # names: the folders'
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent / "runs"

for d in map(Path, sys.argv[1:]):
    if not (d / "summary.json").exists():
        print(f"skip {d}: no summary.json (unfinished)")
        continue
    out = HERE / d.name
    out.mkdir(parents=True, exist_ok=True)
    for src in (d / "summary.json", d / "config.yaml", d / ".hydra" / "overrides.yaml"):
        shutil.copy2(src, out / src.name)
    print(f"kept {out}")
