"""The main job (`ojrs-train`, no overrides) as a user runs it, over deployments and MEC counts.

    python benchmarks/bench_main_job.py [--m 2 5] [--seeds 0 1 2 3] [--extra KEY=VALUE ...]

For every M in `--m` (the paper's sites, `scale=paper_m{M}`) and deployment seed in `--seeds`
(`scale.seed`, the UE positions), runs `ojrs-train` in a new process into a temporary run
directory and keeps from its summary.json the certified NRR (mean, median, 10th percentile, the
number of certified draws), the training time, the time of the first chunk with compilation and
the process's wall time. Prints a table and writes a record (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402


def eval_figures(e: dict) -> dict:
    """The policy's certified NRR of a summary.json `eval` group under the record's names (nrr,
    nrr_median, nrr_p10, draws, certified), from a run of this version (`nrr_policy`, ...,
    `certified`) or an older one (`nrr`, ..., `exact_certified`)."""
    if "nrr_policy" in e:
        return {
            "nrr": e["nrr_policy"],
            "nrr_median": e["nrr_policy_median"],
            "nrr_p10": e["nrr_policy_p10"],
            "draws": e["draws"],
            "certified": e["certified"],
        }
    return {k: e[k] for k in ("nrr", "nrr_median", "nrr_p10", "draws")} | {
        "certified": e["exact_certified"]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--extra", nargs="*", default=[], help="more ojrs-train overrides")
    add_out_argument(ap, "bench_main_job")
    args = ap.parse_args()
    rec = Recording()
    exe = shutil.which("ojrs-train") or "ojrs-train"
    rows = []
    work = Path(tempfile.mkdtemp(prefix="ojrs-main-job-"))
    try:
        for m in args.m:
            for seed in args.seeds:
                run = work / f"m{m}_s{seed}"
                cmd = [
                    exe,
                    f"scale=paper_m{m}",
                    f"scale.seed={seed}",
                    *args.extra,
                    f"hydra.run.dir={run}",
                ]
                t0 = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if p.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.strip()[-800:]}")
                s = json.loads((run / "summary.json").read_text())
                e = eval_figures(s["eval"])
                row = {
                    "m": m,
                    "deployment_seed": seed,
                    "nrr": e["nrr"],
                    "nrr_median": e["nrr_median"],
                    "nrr_p10": e["nrr_p10"],
                    "draws": e["draws"],
                    "certified": e["certified"],
                    "epochs": s["epochs"],
                    "train_s": s["train_seconds"],
                    "first_chunk_with_compile_s": s["first_chunk_seconds_with_compile"],
                    "wall_s": wall,
                }
                rows.append(row)
                print(
                    f"M={m} seed={seed}: NRR {row['nrr']:.4f} (median {row['nrr_median']:.4f}, "
                    f"p10 {row['nrr_p10']:.4f}, {row['certified']}/{row['draws']} certified), "
                    f"train {row['train_s']:.1f} s, wall {wall:.1f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    nrr = np.array([r["nrr"] for r in rows])
    figures = {
        "overrides": args.extra,
        "runs": rows,
        "nrr_min": float(nrr.min()),
        "nrr_mean": float(nrr.mean()),
        "wall_s_max": max(r["wall_s"] for r in rows),
    }
    print(f"NRR over {len(rows)} runs: min {nrr.min():.4f}, mean {nrr.mean():.4f}")
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
