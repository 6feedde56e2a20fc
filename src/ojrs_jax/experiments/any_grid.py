"""A policy for any deployment scored cell by cell and along mobile walks (eqs. 5-13, 24; NRR).

`eval_cell` draws deployments of one size (N = n, M = m) from a deployment distribution, one
Rayleigh channel each, and scores the policy alone, the policy followed by a short ASA
refinement or by best-response passes, Greedy, Greedy with a pass, and ASA from Greedy, with the
one certified evaluation (`system.certify.certify`: float64 costs against SCIP's optimum).
`eval_trajectory` follows one deployment whose UEs walk under time-correlated fading and
certifies every `every`-th epoch. `benchmarks/eval_any.py` runs the grid of
docs/findings/any-deployment.md.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.run.scheduler import Scheduler
from ojrs_jax.search.asa import ASAParams, best_response, search
from ojrs_jax.search.baselines import greedy
from ojrs_jax.system.certify import cases, certify
from ojrs_jax.system.deployment import (
    Deployment,
    DeploymentConfig,
    Problem,
    mobile_trajectory,
    problem_costs,
    random_deployment,
    rayleigh,
)
from ojrs_jax.system.scenario import SystemConfig


def cell_config(dcfg: DeploymentConfig, n: int, m: int, kind: str = "random") -> DeploymentConfig:
    """`dcfg` with N = n and M = m fixed (unpadded): one cell of the evaluation grid."""
    return replace(dcfg, kind=kind, n_ue=(n, n), n_max=n, n_mec=(m, m), m_max=m)


def cell_key(seed: int, n: int, m: int, d: Any) -> jax.Array:
    """The key of draw d of cell (n, m): fold_in(fold_in(key(seed), 1000 n + m), d)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 1000 * n + m), d)


def cell_draw(key: jax.Array, cell: DeploymentConfig, sys: SystemConfig) -> tuple:
    """Draw `key` of a cell: (deployment, one Rayleigh channel, ASA key, refinement key)."""
    k_d, k_h, k_a, k_r = jax.random.split(key, 4)
    dep = random_deployment(k_d, cell, sys)
    return dep, rayleigh(k_h, dep), k_a, k_r


def _asa_params() -> ASAParams:
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), ASAParams())


def policy_action(sched: Scheduler, dep: Deployment, h: jax.Array) -> jax.Array:
    """The policy's own decision (argmax, no search, no pass) for one deployment."""
    return fp.act(sched.net, sched.params, dep, h)


def cell_decisions(
    sched: Scheduler,
    dep: Deployment,
    h: jax.Array,
    k_a: jax.Array,
    k_r: jax.Array,
    asa_iter: int = 100,
    k: int = 128,
    refine_iter: int | None = 20,
    moves: float = 5.0,
    polish: int = 0,
) -> dict:
    """The decisions scored beside the optimum: the policy, the policy + `refine_iter` ASA
    iterations (left out when None), Greedy and ASA from Greedy (`asa_iter` iterations), and
    with `polish` > 0 the policy and Greedy each followed by that many best-response passes
    (`asa.best_response`)."""
    asa_p = _asa_params()
    p = Problem(dep=dep, h=h)
    out = {"policy": policy_action(sched, dep, h)}
    if refine_iter is not None:
        n_iter = max(refine_iter, 1)
        out["policy_asa"] = search(
            k_r, p, out["policy"], refine_iter, asa_p, k=k, max_iter=n_iter, moves=moves
        )[0]
    out["greedy"] = greedy(dep)
    if polish:  # one deterministic best-response pass after the policy, and after Greedy
        costs = problem_costs(p)
        out["policy_br"] = best_response(costs, out["policy"], polish)
        out["greedy_br"] = best_response(costs, out["greedy"], polish)
    out["asa"] = search(
        k_a, p, out["greedy"], asa_iter, asa_p, k=k, max_iter=asa_iter, moves=moves
    )[0]
    return out


def eval_cell(
    sched: Scheduler,
    dcfg: DeploymentConfig,
    n: int,
    m: int,
    draws: int,
    seed: int,
    asa_iter: int = 100,
    k: int = 128,
    exact: bool = True,
    time_limit: float = 60.0,
    refine_iter: int = 20,
    moves: float = 5.0,
    polish: int = 0,
) -> dict:
    """Policy, policy + ASA (`refine_iter` iterations), Greedy and ASA from Greedy (`asa_iter`)
    on `draws` deployments of N = n, M = m drawn from `dcfg` with keys `cell_key(seed, n, m, d)`,
    each with one Rayleigh channel, certified (`certify`). ASA's mutation scale is
    min(0.1, moves / N) (about `moves` UEs change per neighbour)."""
    cell = cell_config(dcfg, n, m)
    keys = jax.vmap(lambda d: cell_key(seed, n, m, d))(jnp.arange(draws))

    @jax.jit
    def solve(keys):
        def one(key):
            dep, h, k_a, k_r = cell_draw(key, cell, sched.sys)
            acts = cell_decisions(sched, dep, h, k_a, k_r, asa_iter, k, refine_iter, moves, polish)
            return dep, h, acts

        return jax.lax.map(one, keys)

    t0 = time.perf_counter()
    deps, H, acts = jax.block_until_ready(solve(keys))
    jax_s = time.perf_counter() - t0
    out: dict[str, Any] = {"n_ue": n, "n_mec": m, "jax_seconds": jax_s}
    return out | certify(cases(Problem(dep=deps, h=H)), acts, exact, time_limit)


def eval_trajectory(
    sched: Scheduler,
    dcfg: DeploymentConfig,
    n: int,
    m: int,
    epochs: int,
    seed: int,
    exact: bool = True,
    time_limit: float = 60.0,
    every: int = 1,
    polish: int = 0,
) -> dict:
    """NRR of the policy along one mobile trajectory (no retraining): a deployment of N = n,
    M = m whose UEs move by random waypoint under Gauss-Markov fading for `epochs` epochs. The
    policy decides every epoch; every `every`-th epoch (0, every, 2 every, ...) is certified
    (`certify`). With `polish` > 0 the policy followed by that many best-response passes is
    scored too."""
    cell = cell_config(dcfg, n, m, kind="mobile")
    deps, H = jax.jit(lambda k: mobile_trajectory(k, cell, sched.sys, epochs))(jax.random.key(seed))
    A = jax.jit(jax.vmap(lambda d, h: policy_action(sched, d, h)))(deps, H)
    acts = {"policy": A, "greedy": jax.vmap(greedy)(deps)}
    if polish:
        acts["policy_br"] = jax.jit(
            jax.vmap(lambda d, h, a: best_response(problem_costs(Problem(d, h)), a, polish))
        )(deps, H, A)
    sampled = np.arange(0, epochs, every)
    pick = lambda x: np.asarray(x)[sampled]  # noqa: E731
    problems = jax.tree.map(pick, Problem(dep=deps, h=H))
    scores = certify(cases(problems), {k: pick(v) for k, v in acts.items()}, exact, time_limit)
    pos = np.asarray(deps.scn.ue_pos, np.float64)  # (E, N, 2)
    moved = np.linalg.norm(pos[-1] - pos[0], axis=-1)
    walked = np.linalg.norm(np.diff(pos, axis=0), axis=-1).sum(axis=0)
    out = {
        "n_ue": n,
        "n_mec": m,
        "epochs": epochs,
        "certified_every": every,
        "samples": int(sampled.size),
        "rho": cell.rho,
        "speed": cell.speed,
        "epoch_s": cell.epoch_s,
        "mean_displacement_m": float(moved.mean()),
        "mean_path_m": float(walked.mean()),
    }
    return out | scores
