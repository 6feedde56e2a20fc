"""How a trained scheduler is scored (paper Sec. V.B-V.E): NRR, references, stability, weights.

One definition of each measure, used by `ojrs-train` (`evaluate_run`), the any-deployment grid
(`experiments.any_grid`), the SAE code study and the jobs of `ojrs-reproduce` (`nrr_evaluator`):
- `certify(cases, decisions)` is the one certified evaluation: every named set of decisions is
  scored in float64 on the real part of each problem (`exact.latency_np`, the MIQP's own cost
  data), SCIP certifies the optimum of each problem (warm started with the best decision), and
  NRR = L(exact) / L(decision) per problem (each term in (0, 1]). Its keys, for every name x:
  `latency_x` (mean), `nrr_x` (mean), `nrr_x_median`, `nrr_x_p10`, `nrr_x_min`, and
  `latency_exact`, `certified` (problems SCIP proved optimal), `exact_seconds` (SCIP's total),
  `draws`; without SCIP only the latencies;
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
from ojrs_jax.system.deployment import Problem, from_scenario, unpad
from ojrs_jax.system.exact import TIME_LIMIT, cost_matrix, exact_miqp, latency_np
from ojrs_jax.system.scenario import Scenario

log = logging.getLogger(__name__)


def weights_changed(params: EnvParams, epoch: int) -> bool:
    """Whether the new task weights are in force at `epoch` (the rule of `env.scenario_at`)."""
    return epoch >= int(params.change_epoch)


def scenario_at(params: EnvParams, epoch: int) -> Scenario:
    """The deployment with the task weights in force at `epoch` (`env.fixed.scenario_at`)."""
    return env_mod.scenario_at(params, jnp.asarray(epoch, jnp.int32))


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


def nrr_stats(l_ref: np.ndarray, l_pol: np.ndarray, name: str) -> dict[str, float]:
    """`nrr_<name>` (mean), `_median`, `_p10` and `_min` of L(reference) / L(decision)."""
    r = np.asarray(l_ref, np.float64) / np.asarray(l_pol, np.float64)
    return {
        f"nrr_{name}": float(r.mean()),
        f"nrr_{name}_median": float(np.median(r)),
        f"nrr_{name}_p10": float(np.percentile(r, 10)),
        f"nrr_{name}_min": float(r.min()),
    }


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


# --- the one certified evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One problem's real part on the host: a scenario of N real UEs and M real MECs, its
    channel in float64, and where its UEs and MECs sit in the padded problem."""

    scn: Scenario  # NumPy-backed, unpadded
    h: np.ndarray  # (N, M) float64
    ue_idx: np.ndarray  # (N,) indices of the real UEs in the padded problem
    mec_idx: np.ndarray  # (M,) indices of the real MECs

    def decision(self, a: np.ndarray) -> np.ndarray:
        """A padded decision (N_max,) as a decision of the real part (0 local, j real MEC j)."""
        a = np.asarray(a)[self.ue_idx]
        pos = np.zeros(int(np.max(self.mec_idx, initial=-1)) + 2, np.int64)
        pos[self.mec_idx + 1] = np.arange(1, self.mec_idx.size + 1)
        return np.where(a > 0, pos[np.clip(a, 0, pos.size - 1)], 0)


def cases(problems: Problem) -> list[Case]:
    """The real part of every problem of a batch, on the host (one copy of the arrays). The
    channels h (B, N, M) share one deployment or have one each (leading axis B)."""
    dep = jax.tree.map(np.asarray, problems.dep)
    H = np.asarray(problems.h, np.float64)
    shared = dep.gain.ndim == 2
    out = []
    for d in range(H.shape[0]):
        one = dep if shared else jax.tree.map(lambda x, d=d: x[d], dep)
        if not one.masked:
            n, m = H.shape[1:]
            out.append(Case(one.scn, H[d], np.arange(n), np.arange(m)))
            continue
        scn, h = unpad(one, H[d])
        ue_idx, mec_idx = np.flatnonzero(one.ue_mask), np.flatnonzero(one.mec_mask)
        out.append(Case(scn, np.asarray(h, np.float64), ue_idx, mec_idx))
    return out


def certify(
    cs: list[Case],
    decisions: dict[str, Any],
    exact: bool = True,
    time_limit: float = TIME_LIMIT,
    desc: str = "SCIP optimum",
) -> dict[str, Any]:
    """The one certified evaluation: each named decision set `decisions[name]` (D, N_max) on the
    problems `cs`, in float64, against SCIP's optimum of each problem (warm started with the
    best of the decisions). Keys: see the module docstring."""
    dec = {k: np.asarray(v) for k, v in decisions.items()}
    lat = {k: np.zeros(len(cs)) for k in dec}
    real = {k: [c.decision(v[d]) for d, c in enumerate(cs)] for k, v in dec.items()}
    for d, c in enumerate(cs):
        for k in dec:
            lat[k][d] = latency_np(c.scn, c.h, real[k][d])
    out: dict[str, Any] = {"draws": len(cs)}
    for k, v in lat.items():
        out[f"latency_{k}"] = float(v.mean())
    if not exact:
        return out
    ex, certified, seconds = np.zeros(len(cs)), 0, 0.0
    for d in bar(range(len(cs)), desc=desc, unit="draw"):
        c = cs[d]
        best = min(dec, key=lambda k, d=d: lat[k][d])
        r = exact_miqp(c.scn, c.h, time_limit, real[best][d])
        ex[d], seconds = r.latency, seconds + r.seconds
        certified += r.status == "optimal"
    out.update(latency_exact=float(ex.mean()), certified=int(certified), exact_seconds=seconds)
    for k, v in lat.items():
        out.update(nrr_stats(ex, v, k))
    return out


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
    a_pol = jax.block_until_ready(trainer.decide(state.policy, online, params, problems))
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
        a = decide(state.policy, online, params, problems)
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
