"""One trained any-deployment model (`ojrs-train deployment=random train=any`, or an older
`ojrs-train-any` run) on a grid of unseen deployments, certified against SCIP.

    python benchmarks/eval_any.py --run RUN_DIR [--n 10 30 100 300] [--m 2 5 10] [--draws 20]
        [--draws-large 10] [--large-from 300] [--seed 10000] [--time-limit 60]
        [--trajectory 100] [--tuned 1 [--tuned-channels 200] [--skip-grid]] [--out FILE.json]

For every cell (N, M): `--draws` deployments (`--draws-large` for N >= `--large-from`) drawn from
the run's `deployment` ranges with N and M fixed, one Rayleigh channel each, with keys
fold_in(fold_in(key(--seed), 1000 N + M), d): the training run used key(seed) splits only
(seed 0 by default), so these draws are unseen. Reported per cell: NRR = mean L(exact) / L(x)
for x = the policy (no search), the policy followed by 20 ASA iterations, Greedy (nearest MEC
with the capacity rule) and ASA from Greedy (100 iterations, K = 128), the minimum NRR of the
policy, how many draws SCIP certified optimal, and the time of the JAX part. `--trajectory E`
also scores the policy along one `mobile` trajectory of E epochs at N = 30, M = 5 (no
retraining), UEs walking at `--traj-speed` m/s with epochs of `--traj-epoch-s` s, every
`--traj-every`-th epoch certified. Figures go to
stdout and to a record (benchmarks/record.py).

`--tuned K` puts the per-deployment scheduler beside each cell with N <= `--tuned-max-n`: for
K of the cell's deployments from index `--tuned-first` (the same draws as the grid's),
`ojrs-train` (the main job, or with `--tuned-overrides`) trained on that very deployment, and
the one model, Greedy and ASA from Greedy, on `--tuned-channels` Rayleigh draws of it, all
against SCIP (`ojrs_jax.experiments.tuned_beside`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.experiments.any_grid import eval_cell, eval_trajectory  # noqa: E402
from ojrs_jax.experiments.tuned_beside import tuned_beside  # noqa: E402
from ojrs_jax.run.scheduler import load_run  # noqa: E402
from ojrs_jax.system.deployment import DeploymentConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--n", type=int, nargs="+", default=[10, 30, 100, 300])
    ap.add_argument("--m", type=int, nargs="+", default=[2, 5, 10])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--draws-large", type=int, default=10)
    ap.add_argument("--large-from", type=int, default=300)
    ap.add_argument("--seed", type=int, default=10_000)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--trajectory", type=int, default=0)
    ap.add_argument("--traj-speed", type=float, default=1.5, help="UE speed, m/s")
    ap.add_argument("--traj-epoch-s", type=float, default=0.02, help="epoch duration, s")
    ap.add_argument("--traj-every", type=int, default=1, help="certify every k-th epoch")
    ap.add_argument("--no-exact", action="store_true")
    ap.add_argument("--tuned", type=int, default=0, help="deployments per cell with their own run")
    ap.add_argument("--tuned-first", type=int, default=0, help="first deployment index of --tuned")
    ap.add_argument("--tuned-channels", type=int, default=200)
    ap.add_argument("--tuned-max-n", type=int, default=100)
    ap.add_argument("--tuned-overrides", nargs="*", default=[], help="e.g. train.epochs=3000")
    ap.add_argument("--skip-grid", action="store_true", help="only the --tuned comparison")
    ap.add_argument(
        "--polish",
        type=int,
        default=0,
        help="also score the policy and Greedy after that many best-response passes",
    )
    add_out_argument(ap, "eval_any")
    args = ap.parse_args()
    rec = Recording()
    import yaml

    sched = load_run(args.run)
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    dcfg = DeploymentConfig.from_mapping(dict(cfg["deployment"]))
    cells = []
    for n in [] if args.skip_grid else args.n:
        for m in args.m:
            draws = args.draws_large if n >= args.large_from else args.draws
            t0 = time.perf_counter()
            r = eval_cell(
                sched,
                dcfg,
                n,
                m,
                draws,
                args.seed,
                exact=not args.no_exact,
                time_limit=args.time_limit,
                polish=args.polish,
            )
            r["wall_seconds"] = time.perf_counter() - t0
            cells.append(r)
            print(json.dumps(r), flush=True)
    figures = {"run": str(args.run), "training_config": cfg, "cells": cells}
    if args.tuned:
        figures["tuned"] = []
        for n in (n for n in args.n if n <= args.tuned_max_n):
            for m in args.m:
                for d in range(args.tuned_first, args.tuned_first + args.tuned):
                    r = tuned_beside(
                        sched,
                        dcfg,
                        n,
                        m,
                        args.seed,
                        d,
                        args.tuned_channels,
                        args.tuned_overrides,
                        exact=not args.no_exact,
                        time_limit=args.time_limit,
                    )
                    figures["tuned"].append(r)
                    print(json.dumps(r), flush=True)
    if args.trajectory:
        mob = replace(dcfg, speed=args.traj_speed, epoch_s=args.traj_epoch_s)
        tr = eval_trajectory(
            sched,
            mob,
            30,
            5,
            args.trajectory,
            args.seed + 1,
            exact=not args.no_exact,
            time_limit=args.time_limit,
            every=args.traj_every,
            polish=args.polish,
        )
        figures["trajectory"] = tr
        print(json.dumps(tr), flush=True)
    summary = args.run / "summary.json"
    if summary.is_file():
        figures["training_summary"] = json.loads(summary.read_text())
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
