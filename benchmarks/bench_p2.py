"""P2 for a fixed decision: the closed form (KKT rule) against jaxopt's ProjectedGradient.

    python benchmarks/bench_p2.py [--n-ue 30] [--mecs 2] [--batch 256] [--budget 2] [--out F.json]

Both solve the CPU shares of `ojrs_jax.system.p2` for random decisions on sampled channels: one
instance per jitted call, and `--batch` instances vmapped in one call (jaxopt's while_loop then runs
until the slowest instance stops). Agreement (largest relative latency difference) and jaxopt's
iteration counts are printed with the times (median wall time, compile excluded), and written with
the command, machine, date, commit and load to a record (benchmarks/record.py). Asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_numpy_ratio import timeit  # noqa: E402
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.search.baselines import random_decision
from ojrs_jax.system.p2 import solve_p2_closed_form, solve_p2_pg
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

CONF = Path(__file__).resolve().parents[1] / "conf"


def scenario(n_ue: int, n_mec: int, layout: str = "paper", area: float = 50.0, seed: int = 2):
    """A deployment with the calibrated constants of conf/system/default.yaml."""
    system = OmegaConf.to_container(OmegaConf.load(CONF / "system" / "default.yaml"))
    scale = {"n_ue": n_ue, "n_mec": n_mec, "layout": layout, "area": area, "seed": seed}
    return make_scenario(SystemConfig.from_mapping({**system, **scale}))


def p2_compare(scn, budget: float, batch: int = 256, seed: int = 0) -> dict:
    """Closed form vs jaxopt on `batch` random decisions: agreement, iterations, times.

    Task weights are redrawn uniformly in [0.5, 1.5] (the paper's weight change): with equal
    tasks the equal shares jaxopt starts from are already optimal and it stops after 1 iteration.
    """
    k_h, k_a, k_w = jax.random.split(jax.random.key(seed), 3)
    w = jax.random.uniform(k_w, scn.weights.shape, minval=0.5, maxval=1.5)
    scn = scn.replace(weights=w.astype(scn.weights.dtype))
    H = sample_channels(k_h, scn, batch)
    A = jax.vmap(random_decision, (0, None))(jax.random.split(k_a, batch), scn)
    cf1 = jax.jit(lambda h, a: solve_p2_closed_form(scn, h, a).latency)
    pg1 = jax.jit(lambda h, a: solve_p2_pg(scn, h, a))
    cfb = jax.jit(jax.vmap(lambda h, a: solve_p2_closed_form(scn, h, a).latency))
    pgb = jax.jit(jax.vmap(lambda h, a: solve_p2_pg(scn, h, a)))
    l_cf = np.asarray(cfb(H, A), np.float64)
    alloc, iters = pgb(H, A)
    l_pg = np.asarray(alloc.latency, np.float64)
    iters = np.asarray(iters)
    h0, a0 = H[0], A[0]  # indexed once: an index inside the timed call is a dispatch of its own
    t_cf1 = timeit(lambda: jax.block_until_ready(cf1(h0, a0)), budget)
    t_pg1 = timeit(lambda: jax.block_until_ready(pg1(h0, a0)), budget)
    t_cfb = timeit(lambda: jax.block_until_ready(cfb(H, A)), budget)
    t_pgb = timeit(lambda: jax.block_until_ready(pgb(H, A)), budget, min_reps=1, max_reps=20)
    return {
        "n_ue": scn.n_ue,
        "n_mec": scn.n_mec,
        "batch": batch,
        "decisions": "uniform random a in {0..M}^N (baselines.random_decision)",
        "weights": "U[0.5, 1.5] per UE",
        "max_rel_latency_diff": float(np.max(np.abs(l_pg / l_cf - 1))),
        "jaxopt_iterations_mean": float(iters.mean()),
        "jaxopt_iterations_max": int(iters.max()),
        "jaxopt_iterations_one_instance": int(np.asarray(pg1(h0, a0)[1])),
        "closed_form_single_us": t_cf1 * 1e6,
        "jaxopt_single_us": t_pg1 * 1e6,
        "ratio_single_jaxopt_over_closed_form": t_pg1 / t_cf1,
        "closed_form_batched_us_per_instance": t_cfb / batch * 1e6,
        "jaxopt_batched_us_per_instance": t_pgb / batch * 1e6,
        "ratio_batched_jaxopt_over_closed_form": t_pgb / t_cfb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-ue", type=int, default=30)
    ap.add_argument("--mecs", type=int, default=2)
    ap.add_argument("--layout", default="paper")
    ap.add_argument("--area", type=float, default=50.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of repeats per figure")
    add_out_argument(ap, "bench_p2")
    a = ap.parse_args()
    rec = Recording()
    scn = scenario(a.n_ue, a.mecs, a.layout, a.area)
    res = p2_compare(scn, a.budget, a.batch)
    print(json.dumps(res, indent=1))
    rec.write(a.out, res)


if __name__ == "__main__":
    main()
