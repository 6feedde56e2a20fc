"""Wall time of `ojrs-decide` as a user meets it: a fresh process, with and without the cache.

    python benchmarks/bench_decide_cli.py RUN_DIR [--channels 8] [--repeats 5]

Draws `--channels` channels of the run's deployment into an .npz, then runs
`ojrs-decide --run RUN_DIR --channels IN.npz --out OUT.npz` in new processes: `--repeats` times
with an empty compilation cache (a new `OJRS_CACHE_DIR` each time) and `--repeats` times with
the cache the first of them filled. Prints and records (benchmarks/record.py) the median and
range of each, and `python -c "import ojrs_jax"` alone for scale.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.strip()[-500:]}")
    return t


def stats(t: list[float]) -> dict:
    return {"median_s": float(np.median(t)), "min_s": min(t), "max_s": max(t), "runs": t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    add_out_argument(ap, "bench_decide_cli")
    args = ap.parse_args()
    rec = Recording()
    import jax

    from ojrs_jax.system.scenario import load_scenario, sample_channels

    scn = load_scenario(args.run / "scenario.json")
    work = Path(tempfile.mkdtemp(prefix="ojrs-decide-bench-"))
    try:
        h = np.asarray(sample_channels(jax.random.key(0), scn, args.channels))
        np.savez(work / "in.npz", h=h)
        exe = shutil.which("ojrs-decide") or "ojrs-decide"
        cmd = [
            exe,
            "--run",
            str(args.run),
            "--channels",
            str(work / "in.npz"),
            "--out",
            str(work / "out.npz"),
        ]
        base = {k: v for k, v in os.environ.items() if k != "OJRS_CACHE_DIR"}
        cold, warm = [], []
        for i in range(args.repeats):
            cold.append(wall(cmd, {**base, "OJRS_CACHE_DIR": str(work / f"cache{i}")}))
        for _ in range(args.repeats):
            warm.append(wall(cmd, {**base, "OJRS_CACHE_DIR": str(work / "cache0")}))
        imp = [wall([sys.executable, "-c", "import ojrs_jax"], base) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "run": str(args.run),
        "n_ue": scn.n_ue,
        "n_mec": scn.n_mec,
        "channels": args.channels,
        "empty_cache": stats(cold),
        "with_cache": stats(warm),
        "import_ojrs_jax": stats(imp),
    }
    for name in ("empty_cache", "with_cache", "import_ojrs_jax"):
        f = figures[name]
        print(f"{name:>16}: median {f['median_s']:.2f} s ({f['min_s']:.2f}-{f['max_s']:.2f})")
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
