"""Wall time of a tiny two-job `ojrs-reproduce -m` sweep under each Hydra launcher preset.

    pip install -e ".[joblib,submitit,ray]"
    python benchmarks/launcher_sweeps.py [--launchers local_submitit ray_local] [--out FILE.json]

For each preset of conf/hydra/launcher named in --launchers, runs the sweep
`experiment=table2,fig7` at tiny scale (N = 6, 200 epochs, 20 draws; the overrides of
tests/test_reproduce.py) into a fresh sweep directory with an empty compilation cache, checks that
both jobs wrote result.json and that the sweep was aggregated (results/results.md), and prints
the command and its wall time (start of the process to its exit, launcher start-up included).
Writes the figures to a record (benchmarks/record.py). This is the documented check of the
submitit and Ray launchers: CI runs the joblib launcher only (tests/test_reproduce.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

TINY = [
    "scale=tiny",
    "sae.latent=8",
    "sae.steps=50",
    "sae.batch_size=32",
    "sae.memory_size=64",
    "asa.k=16",
    "asa.max_iter=8",
    "asa.t_sa0=4",
    "train.epochs=200",
    "train.phi=5",
    "train.batch=32",
    "train.buffer=64",
    "train.change_epoch=100",
    "sae_pretrain.draws=256",
    "reproduce.eval_every=50",
    "reproduce.eval_draws=20",
    "reproduce.seeds=2",
    "table2.draws=20",
    "pso.n_iter=10",
    "fig7.draws=20",
    "fig7.iterations=10",
]
JOBS = ("0_table2", "1_fig7")


def sweep(launcher: str, work: Path) -> dict:
    """Run the two-job sweep under `launcher`; returns the command, wall time and checks."""
    out = work / launcher
    args = ["ojrs-reproduce", "-m", f"hydra/launcher={launcher}", "experiment=table2,fig7", *TINY]
    env = {**os.environ, "OJRS_CACHE_DIR": str(work / f"xla_{launcher}")}
    t0 = time.perf_counter()
    p = subprocess.run(
        [*args, f"hydra.sweep.dir={out}"], capture_output=True, text=True, env=env, timeout=1800
    )
    wall = time.perf_counter() - t0
    ok = p.returncode == 0 and all((out / j / "result.json").is_file() for j in JOBS)
    ok = ok and (out / "results" / "results.md").is_file()
    if not ok:
        print(p.stdout[-2000:], p.stderr[-2000:], file=sys.stderr)
    return {
        "command": shlex.join(args) + " hydra.sweep.dir=DIR",
        "wall_s": round(wall, 1),
        "returncode": p.returncode,
        "jobs_ok": ok,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--launchers", nargs="+", default=["local_submitit", "ray_local"])
    add_out_argument(ap, "launcher_sweeps")
    args = ap.parse_args()
    rec = Recording()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="ojrs-sweeps-") as tmp:
        for launcher in args.launchers:
            r = sweep(launcher, Path(tmp))
            figures[launcher] = r
            print(f"{launcher}: {r['wall_s']:.1f} s, jobs ok: {r['jobs_ok']}  ({r['command']})")
        shutil.rmtree(tmp, ignore_errors=True)
    rec.write(args.out, figures)
    return 0 if all(r["jobs_ok"] for r in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
