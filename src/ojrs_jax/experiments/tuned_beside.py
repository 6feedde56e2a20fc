"""The per-deployment scheduler beside the any-deployment model (Algorithm 3 on one deployment).

For a cell (N, M) of `benchmarks/eval_any.py`'s grid, the deployment of draw d (the same key as
`any_scheduler.eval_cell`'s draw d) gets its own `ojrs-train` scheduler (the main job,
`train=main`, trained from scratch on that very deployment), and both it and the one
any-deployment model are scored on `channels` Rayleigh draws of that deployment against SCIP's
optimum, with Greedy and ASA from Greedy beside them (paper Sec. V.B's NRR, eq. 13's latency).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax import feature_policy as fp
from ojrs_jax.any_scheduler import AnyScheduler, score_draws
from ojrs_jax.asa import ASAParams
from ojrs_jax.deployment import Deployment, DeploymentConfig, random_deployment, rayleigh
from ojrs_jax.experiments.train_run import compose_config
from ojrs_jax.general import masked_asa, masked_greedy
from ojrs_jax.loop import run_chunks
from ojrs_jax.pipeline import build
from ojrs_jax.sae import init_sae
from ojrs_jax.scheduler import make_scheduler


def cell_deployment(sched: AnyScheduler, dcfg: DeploymentConfig, n: int, m: int, seed: int,
                    d: int) -> Deployment:  # fmt: skip
    """Draw d of cell (n, m): the deployment `eval_cell(..., seed)` scores as its draw d."""
    cell = replace(dcfg, kind="random", n_ue=(n, n), n_max=n, n_mec=(m, m), m_max=m)
    base = jax.random.fold_in(jax.random.key(seed), 1000 * n + m)
    k_d = jax.random.split(jax.random.fold_in(base, d), 4)[0]
    return random_deployment(k_d, cell, sched.sys)


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
    env = spec.env()
    state = spec.trainer.init(keys["train"], init_sae(keys["sae"], spec.sae_cfg, n * m, m))
    tc = spec.train_cfg
    t0 = time.perf_counter()
    run = run_chunks(
        spec.trainer.run_chunk, state, env, tc.n_blocks * tc.phi, tc.chunk_blocks * tc.phi
    )
    seconds = time.perf_counter() - t0
    st = run.state
    sched = make_scheduler(scn, tc, spec.sae_cfg, st.policy, st.sae.online)
    return sched, {"epochs": tc.n_blocks * tc.phi, "train_seconds": seconds}


def tuned_beside(
    sched: AnyScheduler, dcfg: DeploymentConfig, n: int, m: int, seed: int, d: int,
    channels: int, overrides: list[str] | None = None, exact: bool = True,
    time_limit: float = 60.0, asa_iter: int = 100, moves: float = 5.0,
) -> dict:  # fmt: skip
    """Draw d of cell (n, m): its own `train=main` scheduler and the any-deployment policy on
    `channels` held-out Rayleigh draws of it, with Greedy and ASA from Greedy (`asa_iter`
    iterations, K = 128, about `moves` UEs changed per neighbour)."""
    dep = cell_deployment(sched, dcfg, n, m, seed, d)
    tuned, info = train_on(dep, overrides)
    k_h, k_a = jax.random.split(jax.random.fold_in(jax.random.key(seed + 1), 1000 * n + m), 2)
    k_h, k_a = jax.random.fold_in(k_h, d), jax.random.fold_in(k_a, d)
    H = jax.vmap(lambda k: rayleigh(k, dep))(jax.random.split(k_h, channels))
    asa_p = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), ASAParams())

    @jax.jit
    def searched(H):
        def one(key, h):
            a_pol = fp.act(sched.net, sched.params, dep, h)
            a_g = masked_greedy(dep)
            a_asa, _, _ = masked_asa(key, dep, h, a_g, asa_iter, asa_p, k=128, max_iter=asa_iter,
                                     moves=moves)  # fmt: skip
            return {"any_policy": a_pol, "greedy": a_g, "asa": a_asa}

        return jax.lax.map(lambda x: one(*x), (jax.random.split(k_a, H.shape[0]), H))

    acts = dict(jax.block_until_ready(searched(H)))
    acts["tuned_policy"] = np.asarray(tuned.pipeline(H)[0])
    out: dict[str, Any] = {"n_ue": n, "n_mec": m, "deployment": d, "channels": channels, **info}
    return out | score_draws([dep.scn] * channels, H, acts, exact, time_limit)
