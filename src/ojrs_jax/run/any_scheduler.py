"""A trained feature policy as a scheduler for any deployment, and its NRR (eqs. 5-13, 24).

The decision is the policy's argmax (eq. 24), by default followed by one pass of single-UE best
responses (`asa.best_response`, deterministic, never worse), the allocation P2's closed form
(eqs. 5-13). `eval_cell` (the policy alone, and with `polish` after the pass) and
`eval_trajectory` (the policy alone) score it by NRR (Sec. V.B) against SCIP's certified optimum.

    sched = load_any_run("outputs/any/...")            # a finished `ojrs-train-any` run
    dep = sched.deployment(ue_pos=..., mec_pos=..., data_bits=..., cycles=..., weights=...,
                           f_mec=...)                   # or gain=(N, M) instead of positions
    a = sched.decide(dep, h)                            # h (N, M) or (B, N, M) -> a (..., N)
    out = sched.allocate(dep, h)                        # {"a", "latency", "f", "p"}

A deployment holds one set of tasks and MECs for a batch of channels, or a batch of them (every
field with a leading B). Physical constants (B, P_max, beta0, sigma2, kappa, F_L) are the run's.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from flax import serialization

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.agent.general import masked_asa, masked_greedy
from ojrs_jax.search.asa import ASAParams, best_response
from ojrs_jax.system.deployment import (
    Deployment,
    DeploymentConfig,
    from_scenario,
    masked_allocation,
    masked_costs,
    masked_latency,
    random_deployment,
    rayleigh,
)
from ojrs_jax.system.exact import exact_miqp, latency_np
from ojrs_jax.system.scenario import ConfigError, Scenario, SystemConfig

MODEL_FILE = "any_model.msgpack"
CONFIG_FILE = "config.yaml"
POLISH = 1  # best-response passes after the policy in a loaded scheduler and `ojrs-decide`


def _array(name: str, v: Any, rank_tail: int, lead: int | None) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an array of real numbers") from None
    if a.ndim not in (rank_tail, rank_tail + 1):
        raise ConfigError(
            f"{name} must have {rank_tail} or {rank_tail + 1} dimensions, got {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name} has NaN or infinite values")
    return a


def make_deployment(
    sys: SystemConfig, *, data_bits, cycles, weights, f_mec, ue_pos=None, mec_pos=None, gain=None
) -> Deployment:
    """A checked `Deployment` (unpadded) from tasks, MEC capacities and either positions (m) or
    large-scale gains g_ij. Every field may carry a leading batch dimension B (then all that
    are given per UE/MEC must). A bad input raises `ConfigError` with one line naming it."""
    if (gain is None) == (ue_pos is None and mec_pos is None):
        raise ConfigError("give either gain (N, M) or both ue_pos (N, 2) and mec_pos (M, 2)")
    if gain is not None:
        g = _array("gain", gain, 2, None)
        if np.any(g <= 0):
            raise ConfigError("gain must be positive (linear large-scale power gains)")
    else:
        if ue_pos is None or mec_pos is None:
            raise ConfigError("positions need both ue_pos (N, 2) and mec_pos (M, 2)")
        up, mp = _array("ue_pos", ue_pos, 2, None), _array("mec_pos", mec_pos, 2, None)
        if up.shape[-1] != 2 or mp.shape[-1] != 2:
            raise ConfigError(
                f"ue_pos and mec_pos must end in 2 coordinates, got {up.shape}, {mp.shape}"
            )
        d = np.linalg.norm(up[..., :, None, :] - mp[..., None, :, :], axis=-1)
        g = sys.beta0 / np.maximum(d, 1.0) ** 2
    n, m = g.shape[-2:]
    batch = g.shape[:-2]
    vecs = {}
    for name, v, size in (
        ("data_bits", data_bits, n),
        ("cycles", cycles, n),
        ("weights", weights, n),
        ("f_mec", f_mec, m),
    ):
        a = np.asarray(v, np.float64) if np.ndim(v) else np.full((size,), float(v))
        a = _array(name, a, 1, None)
        if a.shape[-1] != size:
            what = "N" if size == n else "M"
            raise ConfigError(f"{name} must have length {what} = {size}, got shape {a.shape}")
        if np.any(a <= 0):
            raise ConfigError(f"{name} must be positive")
        vecs[name] = a
    shapes = {a.shape[:-1] for a in vecs.values()} | {batch}
    shapes.discard(())
    if len(shapes) > 1:
        raise ConfigError(f"inconsistent batch dimensions in the deployment: {sorted(shapes)}")
    b = next(iter(shapes)) if shapes else ()
    f32 = jnp.float32

    def full(a, tail):
        return jnp.asarray(np.broadcast_to(a, b + tail), f32)

    consts = {
        k: jnp.asarray(getattr(sys, k), f32)
        for k in ("bandwidth", "p_max", "beta0", "noise", "kappa", "f_local")
    }
    if b:
        consts = {k: jnp.broadcast_to(v, b) for k, v in consts.items()}
    scn = Scenario(
        ue_pos=full(np.zeros(2), (n, 2)) if ue_pos is None else full(up, (n, 2)),
        mec_pos=full(np.zeros(2), (m, 2)) if mec_pos is None else full(mp, (m, 2)),
        data_bits=full(vecs["data_bits"], (n,)),
        cycles=full(vecs["cycles"], (n,)),
        weights=full(vecs["weights"], (n,)),
        f_mec=full(vecs["f_mec"], (m,)),
        **consts,
    )
    return Deployment(
        scn=scn,
        gain=full(g, (n, m)),
        ue_mask=jnp.ones(b + (n,), bool),
        mec_mask=jnp.ones(b + (m,), bool),
    )


def check_channels(dep: Deployment, h: Any) -> jnp.ndarray:
    """Validate channels h (N, M) or (B, N, M) against a deployment; float32."""
    h = _array("channels h", h, 2, None)
    n, m = dep.gain.shape[-2:]
    if h.shape[-2:] != (n, m):
        raise ConfigError(f"channels h have (N, M) = {h.shape[-2:]}, the deployment {(n, m)}")
    if np.any(h <= 0):
        raise ConfigError("channels h have zero or negative gains (linear power gains > 0)")
    if dep.gain.ndim == 3 and (h.ndim != 3 or h.shape[0] != dep.gain.shape[0]):
        raise ConfigError(f"a batch of {dep.gain.shape[0]} deployments needs h (B, N, M)")
    return jnp.asarray(h, jnp.float32)


@dataclass(frozen=True)
class AnyScheduler:
    """A trained feature policy: decisions and P2 allocations for any deployment."""

    net: fp.FeaturePolicy
    params: Any
    sys: SystemConfig
    refine: int = 0  # > 0: that many ASA iterations (K = 128, ~5 UEs moved) after the policy
    polish: int = 0  # > 0: that many best-response passes last (`asa.best_response`)

    def __post_init__(self) -> None:
        fn = functools.partial(_pipeline, self.net, refine=self.refine, polish=self.polish)
        object.__setattr__(self, "_pipeline", jax.jit(fn))

    def deployment(self, **kw) -> Deployment:
        """`make_deployment` with this run's physical constants."""
        return make_deployment(self.sys, **kw)

    def allocate(self, dep: Deployment | dict, h: Any) -> dict[str, np.ndarray]:
        """Decisions a (..., N), latency (...) s, f (..., N) Hz, p (..., N) W."""
        if isinstance(dep, dict):
            dep = self.deployment(**dep)
        h = check_channels(dep, h)
        out = self._pipeline(self.params, dep, h)
        return {k: np.asarray(v, np.int32 if k == "a" else np.float64) for k, v in out.items()}

    def decide(self, dep: Deployment | dict, h: Any) -> np.ndarray:
        return self.allocate(dep, h)["a"]


def _asa_params() -> ASAParams:
    """ASA's default numbers as float32 leaves (the refinement and the evaluation's searches)."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), ASAParams())


def _pipeline(net, params, dep, h, refine: int = 0, polish: int = 0):
    asa_p = _asa_params()

    def one(d, x):
        a = fp.act(net, params, d, x)
        if refine:  # a fixed key: the same inputs give the same decision
            a, _, _ = masked_asa(
                jax.random.key(0), d, x, a, refine, asa_p, k=128, max_iter=refine, moves=5.0
            )
        if polish:
            a = best_response(masked_costs(d, x), a, polish)
        return masked_allocation(d, x, a)

    if h.ndim == 2:
        return one(dep, h)
    return jax.vmap(one, (0 if dep.gain.ndim == 3 else None, 0))(dep, h)


def save_any_run(run_dir: Path, cfg: dict, params: Any) -> None:
    from ojrs_jax.core.io import atomic_write_bytes, atomic_write_text

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(cfg, sort_keys=False))
    atomic_write_bytes(
        run_dir / MODEL_FILE, serialization.msgpack_serialize(jax.tree.map(np.asarray, params))
    )


def load_any_run(run_dir: str | Path, refine: int = 0, polish: int = POLISH) -> AnyScheduler:
    """The scheduler of a finished `ojrs-train-any` run: the policy, `refine` ASA iterations,
    then `polish` best-response passes (default one: deterministic, never worse, NRR >= 0.996
    at N <= 100 in README's grid; `polish=0` for the policy alone); problems raise
    `ConfigError`."""
    from ojrs_jax.agent.general import AnyTrainConfig
    from ojrs_jax.run.checkpoint import read_config
    from ojrs_jax.system.scenario import system_config

    run_dir = Path(run_dir)
    need = [run_dir / CONFIG_FILE, run_dir / MODEL_FILE]
    missing = [p.name for p in need if not p.is_file()]
    if missing:
        raise ConfigError(f"{run_dir} is not a finished ojrs-train-any run (missing {missing[0]})")
    cfg = read_config(run_dir)  # a mapping, or one ConfigError line naming the file
    try:
        params = serialization.msgpack_restore(need[1].read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the run in {run_dir}: {e}") from None
    g = AnyTrainConfig.from_mapping(dict(cfg.get("general") or {}), cfg.get("asa"))
    net = fp.FeaturePolicy(rounds=g.rounds, width=g.width, hidden=g.hidden)
    sys = replace(system_config({"system": cfg.get("system", {})}))
    return AnyScheduler(net, jax.tree.map(jnp.asarray, params), sys, refine, polish)


# --- evaluation against the certified optimum -------------------------------------------------


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


def cell_decisions(
    sched: AnyScheduler,
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
    out = {"policy": fp.act(sched.net, sched.params, dep, h)}
    if refine_iter is not None:
        out["policy_asa"] = masked_asa(
            k_r,
            dep,
            h,
            out["policy"],
            refine_iter,
            asa_p,
            k=k,
            max_iter=max(refine_iter, 1),
            moves=moves,
        )[0]
    out["greedy"] = masked_greedy(dep)
    if polish:  # one deterministic best-response pass after the policy, and after Greedy
        costs = masked_costs(dep, h)
        out["policy_br"] = best_response(costs, out["policy"], polish)
        out["greedy_br"] = best_response(costs, out["greedy"], polish)
    out["asa"] = masked_asa(
        k_a, dep, h, out["greedy"], asa_iter, asa_p, k=k, max_iter=asa_iter, moves=moves
    )[0]
    return out


def host_scenarios(scn: Scenario, count: int) -> list[Scenario]:
    """The `count` scenarios stacked in `scn` (leading axis), copied to the host once."""
    host = jax.tree.map(np.asarray, scn)
    return [jax.tree.map(lambda x, d=d: x[d], host) for d in range(count)]


def eval_cell(
    sched: AnyScheduler,
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
    each with one Rayleigh channel; NRR = L(exact) / L(x) per draw (float64 costs, SCIP). ASA's
    mutation scale is min(0.1, moves / N) (about `moves` UEs change per neighbour)."""
    cell = cell_config(dcfg, n, m)
    keys = jax.vmap(lambda d: cell_key(seed, n, m, d))(jnp.arange(draws))

    @jax.jit
    def solve(keys):
        def one(key):
            dep, h, k_a, k_r = cell_draw(key, cell, sched.sys)
            acts = cell_decisions(sched, dep, h, k_a, k_r, asa_iter, k, refine_iter, moves, polish)
            return dep.scn, h, acts

        return jax.lax.map(one, keys)

    t0 = time.perf_counter()
    scn, H, acts = jax.block_until_ready(solve(keys))
    jax_s = time.perf_counter() - t0
    out: dict[str, Any] = {"n_ue": n, "n_mec": m, "draws": draws, "jax_seconds": jax_s}
    return out | score_draws(host_scenarios(scn, draws), H, acts, exact, time_limit)


def score_draws(
    scns: list[Scenario], H: Any, acts: dict[str, Any], exact: bool = True, time_limit: float = 60.0
) -> dict:
    """Mean latency of each named decision set `acts[name]` (D, N) on draws (scns[d], H[d]) in
    float64 and, with `exact`, NRR = mean L(exact) / L(x) and its minimum against SCIP (warm
    started with the best of the decisions), and how many draws SCIP certified optimal."""
    H = np.asarray(H, np.float64)
    acts = {k_: np.asarray(v) for k_, v in acts.items()}
    draws = len(scns)
    lat = {k_: np.zeros(draws) for k_ in acts}
    ex, cert, ex_s = np.zeros(draws), 0, 0.0
    for d, scn in enumerate(scns):
        for name, a in acts.items():
            lat[name][d] = latency_np(scn, H[d], a[d])
        if exact:
            best = min(acts, key=lambda name, d=d: lat[name][d])
            r = exact_miqp(scn, H[d], time_limit, acts[best][d])
            ex[d], ex_s = r.latency, ex_s + r.seconds
            cert += r.status == "optimal"
    out: dict[str, Any] = {}
    for name, v in lat.items():
        out[f"latency_{name}"] = float(v.mean())
        if exact:
            out[f"nrr_{name}"] = float(np.mean(ex / v))
            out[f"nrr_{name}_min"] = float(np.min(ex / v))
    if exact:
        out.update(latency_exact=float(ex.mean()), certified=int(cert), exact_seconds=ex_s)
    return out


def eval_trajectory(
    sched: AnyScheduler,
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
    policy decides every epoch; every `every`-th epoch (0, every, 2 every, ...) is certified.
    With `polish` > 0 the policy followed by that many best-response passes is scored too."""
    from ojrs_jax.system.deployment import mobile_trajectory

    cell = cell_config(dcfg, n, m, kind="mobile")
    deps, H = jax.jit(lambda k: mobile_trajectory(k, cell, sched.sys, epochs))(jax.random.key(seed))
    A = jax.jit(jax.vmap(lambda d, h: fp.act(sched.net, sched.params, d, h)))(deps, H)
    acts = {"policy": A, "greedy": jax.vmap(masked_greedy)(deps)}
    if polish:
        acts["policy_br"] = jax.jit(
            jax.vmap(lambda d, h, a: best_response(masked_costs(d, h), a, polish))
        )(deps, H, A)
    H64 = np.asarray(H, np.float64)
    acts = {k: np.asarray(v) for k, v in acts.items()}
    sampled = np.arange(0, epochs, every)
    host = jax.tree.map(np.asarray, deps.scn)  # one copy; the samples slice it on the host
    nrr, cert = {k: np.zeros(sampled.size) for k in acts}, 0
    for i, t in enumerate(sampled):
        scn = jax.tree.map(lambda x, t=t: x[t], host)
        lat = {k: latency_np(scn, H64[t], a[t]) for k, a in acts.items()}
        if exact:
            best = min(lat, key=lat.get)
            r = exact_miqp(scn, H64[t], time_limit, acts[best][t])
            cert += r.status == "optimal"
            for k in acts:
                nrr[k][i] = r.latency / lat[k]
    pos = np.asarray(host.ue_pos, np.float64)  # (E, N, 2)
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
        "nrr_policy": float(nrr["policy"].mean()),
        "nrr_policy_min": float(nrr["policy"].min()),
        "nrr_greedy": float(nrr["greedy"].mean()),
        "certified": int(cert),
    }
    if polish:
        out["nrr_policy_br"] = float(nrr["policy_br"].mean())
        out["nrr_policy_br_min"] = float(nrr["policy_br"].min())
    return out


def scenario_deployment(scn: Scenario) -> Deployment:
    """The fixed deployment of a `Scenario` (all UEs and MECs real)."""
    return from_scenario(scn)


__all__ = [
    "AnyScheduler",
    "cell_config",
    "cell_decisions",
    "cell_draw",
    "cell_key",
    "eval_cell",
    "eval_trajectory",
    "load_any_run",
    "make_deployment",
    "masked_latency",
    "save_any_run",
    "score_draws",
]
