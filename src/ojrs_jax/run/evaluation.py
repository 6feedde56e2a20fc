"""How a trained scheduler is scored (paper Sec. V.B-V.E): NRR, references, stability, weights.

One definition of each measure, used by `ojrs-train` (`evaluate_run`) and the jobs of
`ojrs-reproduce` (`nrr_evaluator`):
- NRR of a policy on held-out channel draws = mean over the draws of L(reference) / L(policy)
  (each term in (0, 1] against the exact optimum), computed in float64: the policy's latency is
  recomputed from the MIQP's own float64 cost data (`ojrs_jax.system.exact.latency_np`), the
  reference is SCIP's float64 latency or PSO's decision re-scored the same way;
- the weights in force at epoch t are the new ones from `change_epoch` on (`t >= change_epoch`),
  the rule of the trainer (`ojrs_jax.env.fixed.scenario_at`); t counts the epochs done, so a policy
  evaluated after t epochs is scored with the weights of the next epoch it would schedule;
- `epochs_to_stable`: the paper's "stable after ~2500 epochs" made precise.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent.trainer import Env, Trainer, TrainState
from ojrs_jax.core.progress import bar, log_summary
from ojrs_jax.env import fixed as env_mod
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.search.pso import PSOConfig, PSOParams, pso
from ojrs_jax.system.exact import TIME_LIMIT, cost_matrix, exact_miqp, latency_np
from ojrs_jax.system.p2 import batched_latency
from ojrs_jax.system.scenario import Scenario

log = logging.getLogger(__name__)


def weights_changed(env: Env, epoch: int) -> bool:
    """Whether the new task weights are in force at `epoch` (the rule of `env.scenario_at`)."""
    return epoch >= int(env.change_epoch)


def scenario_at(env: Env, epoch: int) -> Scenario:
    """The deployment with the task weights in force at `epoch` (`env.fixed.scenario_at`)."""
    return env_mod.scenario_at(env, jnp.asarray(epoch, jnp.int32))


def latency64(scn: Scenario, H: np.ndarray, A: np.ndarray) -> np.ndarray:
    """L(a) of eq. 13 in float64 for decisions A (..., K, N) on draws H (K, N, M): the value of
    `ojrs_jax.system.exact.latency_np` for each (draw, decision), with the costs computed once
    per draw."""
    H = np.asarray(H, np.float64)
    A = np.asarray(A)
    lead, (k, n) = A.shape[:-2], A.shape[-2:]
    flat = A.reshape(-1, k, n)
    out = np.empty(flat.shape[:2], np.float64)
    for e in range(k):
        cost, c = cost_matrix(scn, H[e])
        for s in range(flat.shape[0]):
            a = flat[s, e]
            lin = cost[np.arange(a.size), a].sum()
            loads = np.array([c[a == j + 1, j].sum() for j in range(c.shape[1])])
            out[s, e] = float(lin + np.sum(loads**2))
    return out.reshape(*lead, k)


def nrr(l_ref: np.ndarray, l_pol: np.ndarray) -> np.ndarray:
    """NRR: mean over the draws (last axis) of L(reference) / L(policy), in float64."""
    return np.mean(np.asarray(l_ref, np.float64) / np.asarray(l_pol, np.float64), axis=-1)


def epochs_to_stable(reward: np.ndarray, window: int = 500, tol: float = 0.02) -> int:
    """First epoch from which the moving average of the reward (over `window` epochs) stays within
    `tol` (relative) of its final value: the paper's "stable after ~2500 epochs" made precise."""
    r = np.asarray(reward, np.float64)
    if r.size < window:
        return r.size
    ma = np.convolve(r, np.ones(window) / window, mode="valid")  # ma[t] averages r[t : t+window]
    final = ma[-1]
    outside = np.nonzero(np.abs(ma - final) > tol * abs(final))[0]
    return int(outside[-1] + 1 + window) if outside.size else window


# --- one trained policy against Greedy, Random and the exact optimum (`ojrs-train`) -------------


def evaluate_run(
    trainer: Trainer,
    state: TrainState,
    env: Env,
    key: jax.Array,
    draws: int = 1000,
    exact: bool = True,
    time_limit: float = TIME_LIMIT,
) -> dict[str, Any]:
    """Policy decisions (no search) on held-out channels against Greedy, Random and the exact
    optimum: NRR = mean over draws of L(exact) / L(policy) (each term in (0, 1])."""
    epoch = int(state.epoch)
    scn = scenario_at(env, epoch)
    k_h, k_r = jax.random.split(key)
    H = env_mod.draws(k_h, env, draws)
    a_pol = trainer.decide(state.policy, state.sae.online, env, H)
    jax.block_until_ready(a_pol)
    l_pol = np.asarray(batched_latency(scn, H, a_pol), np.float64)
    a_g = jnp.broadcast_to(greedy(scn), a_pol.shape)
    a_r = jax.vmap(random_decision, (0, None))(jax.random.split(k_r, draws), scn)
    out: dict[str, Any] = {
        "epoch": epoch,
        "draws": draws,
        "latency_policy": float(l_pol.mean()),
        "latency_policy_median": float(np.median(l_pol)),
        "latency_greedy": float(np.mean(batched_latency(scn, H, a_g))),
        "latency_random": float(np.mean(batched_latency(scn, H, a_r))),
    }
    if exact:
        H_np = np.asarray(H, np.float64)
        warm = np.asarray(a_pol)
        draws_it = bar(range(draws), desc="SCIP optimum", unit="draw")
        res = [exact_miqp(scn, H_np[e], time_limit, warm[e]) for e in draws_it]
        l_ex = np.array([r.latency for r in res])
        # the policy's latency in the same float64 model as SCIP's, for a consistent ratio
        l_pol64 = np.array([latency_np(scn, H_np[e], warm[e]) for e in range(draws)])
        ratio = l_ex / l_pol64
        out.update(
            latency_exact=float(l_ex.mean()),
            nrr=float(nrr(l_ex, l_pol64)),
            nrr_median=float(np.median(ratio)),
            nrr_p10=float(np.percentile(ratio, 10)),
            exact_certified=int(sum(r.status == "optimal" for r in res)),
            exact_seconds=float(np.mean([r.seconds for r in res])),
        )
    keys = (
        "channels",
        "latency_policy",
        "latency_greedy",
        "latency_exact",
        "nrr",
        "exact_certified",
    )
    log_summary(log, "evaluation", {k: out.get(k) for k in keys})
    return out


# --- held-out references and NRR during training (`ojrs-reproduce`, Table III) ----------------


@dataclass
class Reference:
    """A fixed held-out set of channels with reference latencies for one set of task weights."""

    scn: Scenario
    H: jax.Array  # (K, N, M)
    exact: np.ndarray  # (K,) certified optimum (SCIP), float64
    pso: np.ndarray  # (K,) PSO from Greedy, float64
    certified: int  # draws SCIP proved optimal


@functools.partial(jax.jit, static_argnames=("n_particles", "n_iter"))
def _pso_batch(keys, scn, H, a0, params, n_particles: int, n_iter: int) -> jax.Array:
    """PSO decisions for a batch of draws; compiled once for both weight sets of a job."""
    return jax.vmap(
        lambda k, h: pso(k, scn, h, a0, params, n_particles=n_particles, n_iter=n_iter)[0]
    )(keys, H)


def make_reference(
    key: jax.Array,
    scn: Scenario,
    H: jax.Array,
    pso_cfg: PSOConfig,
    pso_params: PSOParams,
    time_limit: float,
) -> Reference:
    """SCIP optimum and PSO on each draw of H under scn's weights."""
    a0 = greedy(scn)
    draws = bar(range(H.shape[0]), desc="SCIP reference", unit="draw")
    res = [exact_miqp(scn, np.asarray(H[e], np.float64), time_limit) for e in draws]
    log.info(
        "SCIP reference: %d draws, %d certified", len(res), sum(r.status == "optimal" for r in res)
    )
    a_pso = _pso_batch(
        jax.random.split(key, H.shape[0]),
        scn,
        H,
        a0,
        pso_params,
        pso_cfg.n_particles,
        pso_cfg.n_iter,
    )
    return Reference(
        scn=scn,
        H=H,
        exact=np.array([r.latency for r in res], np.float64),
        pso=latency64(scn, H, np.asarray(a_pso)),
        certified=int(sum(r.status == "optimal" for r in res)),
    )


def nrr_evaluator(trainer: Trainer, env: Env, refs: tuple[Reference, Reference]):
    """`measure(states, epochs_done)`: NRR of every seed's policy (no search) on the held-out set,
    against exact and PSO, with the reference of the weights in force (`weights_changed`)."""
    decide = jax.jit(jax.vmap(trainer.decide, (0, 0, None, None)))

    def measure(state: TrainState, done: int) -> dict[str, Any]:
        changed = weights_changed(env, done)
        ref = refs[1] if changed else refs[0]
        a = decide(state.policy, state.sae.online, env, ref.H)
        lp = latency64(ref.scn, ref.H, np.asarray(a))  # (S, K)
        return {
            "phase": "S" if changed else "F",
            "nrr_exact": nrr(ref.exact, lp),
            "nrr_pso": nrr(ref.pso, lp),
            "latency": lp.mean(axis=1),
        }

    return measure


def phase_stats(evals: list[dict[str, Any]], phase: str, key: str) -> dict[str, np.ndarray]:
    """Per-seed Best (max) and Avg (mean) of `key` over the evaluation points of a phase."""
    pts = [e[key] for e in evals if e["phase"] == phase]
    if not pts:
        return {}
    x = np.stack(pts)  # (points, S)
    return {"best": x.max(axis=0), "avg": x.mean(axis=0)}
