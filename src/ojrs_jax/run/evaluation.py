"""How a trained scheduler is scored (paper Sec. V.B-V.E): NRR, references, stability, weights.

One definition of each measure, used by `ojrs-train` (`evaluate_run`) and the jobs of
`ojrs-reproduce` (`nrr_evaluator`):
- NRR is the certified evaluation of `system.certify` (`certify`): decisions scored in float64
  against SCIP's optimum, with one set of result keys (`nrr_policy`, `latency_greedy`, ...);
  `evaluate_run` scores a trained policy beside Greedy and Random on held-out problems;
- the weights in force at epoch t are the new ones from `change_epoch` on (`t >= change_epoch`),
  the rule of the environment (`ojrs_jax.env.fixed.scenario_at`); t counts the epochs done, so a
  policy evaluated after t epochs is scored with the weights of the next epoch it would schedule;
- `epochs_to_stable`: the paper's "stable after ~2500 epochs" made precise.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent.trainer import Trainer, TrainState
from ojrs_jax.core.progress import bar, log_summary
from ojrs_jax.env import fixed as env_mod
from ojrs_jax.env.base import OffloadingEnv
from ojrs_jax.env.fixed import EnvParams, FixedDeployment
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.search.pso import PSOConfig, PSOParams, pso
from ojrs_jax.system.certify import cases, certify, latency64, nrr
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.exact import TIME_LIMIT, exact_miqp
from ojrs_jax.system.scenario import Scenario

log = logging.getLogger(__name__)


def weights_changed(params: EnvParams, epoch: int) -> bool:
    """Whether the new task weights are in force at `epoch` (the rule of `env.scenario_at`)."""
    return epoch >= int(params.change_epoch)


def scenario_at(params: EnvParams, epoch: int) -> Scenario:
    """The deployment with the task weights in force at `epoch` (`env.fixed.scenario_at`)."""
    return env_mod.scenario_at(params, jnp.asarray(epoch, jnp.int32))


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


def held_out(env: OffloadingEnv, key: jax.Array, params: Any, draws: int, epoch: int) -> Problem:
    """`draws` held-out problems of the task at `epoch`: for the fixed deployment its channels
    (`env.fixed.draws`) under the weights in force, sharing one deployment; for a distribution,
    the first epoch of `draws` fresh episodes (a deployment each)."""
    if isinstance(env, FixedDeployment):
        dep = from_scenario(scenario_at(params, epoch))
        return Problem(dep=dep, h=env_mod.draws(key, params, draws))
    first = jax.jit(jax.vmap(lambda k: env.reset_env(k, params)[1].problem))
    return first(jax.random.split(key, draws))


def baseline_decisions(key: jax.Array, problems: Problem, draws: int) -> dict[str, jax.Array]:
    """Greedy and Random (Sec. V.D) for each problem (D, N)."""
    dep = problems.dep
    keys = jax.random.split(key, draws)
    if dep.gain.ndim == 2:  # one deployment for every channel
        x = dep.scn if not dep.masked else dep
        a_g = jnp.broadcast_to(greedy(x), (draws, dep.n_max))
        return {"greedy": a_g, "random": jax.vmap(random_decision, (0, None))(keys, x)}
    return {"greedy": jax.vmap(greedy)(dep), "random": jax.vmap(random_decision)(keys, dep)}


def evaluate_run(
    trainer: Trainer,
    state: TrainState,
    params: Any,
    key: jax.Array,
    draws: int = 1000,
    exact: bool = True,
    time_limit: float = TIME_LIMIT,
) -> dict[str, Any]:
    """The policy's decisions (no search) on held-out problems beside Greedy and Random,
    certified against the exact optimum (`certify`); plus the epoch and the JAX seconds."""
    epoch = int(state.epoch)
    k_h, k_r = jax.random.split(key)
    problems = held_out(trainer.env, k_h, params, draws, epoch)
    t0 = time.perf_counter()
    online = None if state.sae is None else state.sae.online
    theta = trainer.deciding(state)
    a_pol = jax.block_until_ready(trainer.decide(theta, online, params, problems))
    decide_s = time.perf_counter() - t0
    acts = {"policy": a_pol, **baseline_decisions(k_r, problems, draws)}
    out = {"epoch": epoch, "decide_seconds": decide_s}
    out |= certify(cases(problems), acts, exact, time_limit)
    keys = ("draws", "latency_policy", "latency_greedy", "latency_exact", "nrr_policy", "certified")
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


def nrr_evaluator(trainer: Trainer, params: EnvParams, refs: tuple[Reference, Reference]):
    """`measure(states, epochs_done)`: NRR of every seed's policy (no search) on the held-out set,
    against exact and PSO, with the reference of the weights in force (`weights_changed`)."""
    decide = jax.jit(jax.vmap(trainer.decide, (0, 0, None, None)))

    def measure(state: TrainState, done: int) -> dict[str, Any]:
        changed = weights_changed(params, done)
        ref = refs[1] if changed else refs[0]
        online = None if state.sae is None else state.sae.online
        problems = Problem(dep=from_scenario(ref.scn), h=ref.H)
        a = decide(trainer.deciding(state), online, params, problems)
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
