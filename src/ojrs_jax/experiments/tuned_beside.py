"""The per-deployment scheduler beside the any-deployment model (Algorithm 3 on one deployment).

For a cell (N, M) of `benchmarks/eval_any.py`'s grid, the deployment of draw d (the same key as
`experiments.any_grid.eval_cell`'s draw d) gets its own `ojrs-train` scheduler (the main job,
`train=main`, trained from scratch on that very deployment), and both it and the one
any-deployment model are scored on `channels` Rayleigh draws of that deployment against SCIP's
optimum, with Greedy and ASA from Greedy beside them (paper Sec. V.B's NRR, eq. 13's latency).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import jax
import numpy as np

from ojrs_jax.app.compose import compose_config
from ojrs_jax.experiments.any_grid import cell_config, cell_decisions, cell_draw, cell_key
from ojrs_jax.run.build import build, initial_sae
from ojrs_jax.run.loop import run_chunks
from ojrs_jax.run.scheduler import Scheduler, make_scheduler
from ojrs_jax.system.certify import cases, certify
from ojrs_jax.system.deployment import Deployment, DeploymentConfig, Problem, rayleigh


def cell_deployment(
    sched: Scheduler, dcfg: DeploymentConfig, n: int, m: int, seed: int, d: int
) -> Deployment:
    """Draw d of cell (n, m): the deployment `eval_cell(..., seed)` scores as its draw d."""
    return cell_draw(cell_key(seed, n, m, d), cell_config(dcfg, n, m), sched.sys)[0]


def train_on(
    dep: Deployment, overrides: list[str] | None = None, seed: int = 0
) -> tuple[Any, dict]:
    """`ojrs-train` (the main job plus `overrides`) on the deployment `dep` (unpadded) instead of
    the scale preset's: returns its `Scheduler` and the training time."""
    scn = dep.scn
    n, m = scn.n_ue, scn.n_mec
    size = [f"scale.n_ue={n}", f"scale.n_mec={m}", "scale.layout=random"]  # positions: dep's
    cfg = compose_config([*size, f"seed={seed}", *(overrides or [])])
    spec = replace(build(cfg), scn=scn)
    keys = spec.keys()
    params = spec.env_params()
    state = spec.trainer.init(keys["train"], initial_sae(keys["sae"], spec)[0], params)
    tc = spec.train_cfg
    t0 = time.perf_counter()
    run = run_chunks(
        spec.trainer.run_chunk, state, params, tc.n_blocks * tc.phi, tc.chunk_blocks * tc.phi
    )
    seconds = time.perf_counter() - t0
    st = run.state
    model = spec.trainer.model(st)
    sched = make_scheduler(scn, tc, spec.sae_cfg, model["policy"], model["encoder"])
    return sched, {"epochs": tc.n_blocks * tc.phi, "train_seconds": seconds}


def tuned_beside(
    sched: Scheduler,
    dcfg: DeploymentConfig,
    n: int,
    m: int,
    seed: int,
    d: int,
    channels: int,
    overrides: list[str] | None = None,
    exact: bool = True,
    time_limit: float = 60.0,
    asa_iter: int = 100,
    moves: float = 5.0,
) -> dict:
    """Draw d of cell (n, m): its own `train=main` scheduler and the any-deployment policy on
    `channels` held-out Rayleigh draws of it, with Greedy and ASA from Greedy (`asa_iter`
    iterations, K = 128, about `moves` UEs changed per neighbour)."""
    dep = cell_deployment(sched, dcfg, n, m, seed, d)
    tuned, info = train_on(dep, overrides)
    k_h, k_a = jax.random.split(jax.random.fold_in(jax.random.key(seed + 1), 1000 * n + m), 2)
    k_h, k_a = jax.random.fold_in(k_h, d), jax.random.fold_in(k_a, d)
    H = jax.vmap(lambda k: rayleigh(k, dep))(jax.random.split(k_h, channels))

    @jax.jit
    def searched(H):
        def one(key, h):  # refine_iter None: the policy, Greedy and ASA from Greedy
            return cell_decisions(sched, dep, h, key, key, asa_iter, 128, None, moves)

        return jax.lax.map(lambda x: one(*x), (jax.random.split(k_a, H.shape[0]), H))

    acts = {
        ("any_policy" if k == "policy" else k): v
        for k, v in jax.block_until_ready(searched(H)).items()
    }
    acts["tuned_policy"] = np.asarray(tuned.pipeline(H)[0])
    out: dict[str, Any] = {"n_ue": n, "n_mec": m, "deployment": d, "channels": channels, **info}
    return out | certify(cases(Problem(dep=dep, h=H)), acts, exact, time_limit)
