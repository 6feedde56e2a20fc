"""The OJRS pipeline end to end: configure, pretrain the 2r-SAE, run Algorithm 3, measure NRR.

Used by `ojrs-train`, `ojrs-decide`, the notebooks and the reproduction scripts, so that each
of them builds a run the same way from one plain config dict (the resolved Hydra config):

    spec = build(cfg)                          # typed configs + scenario + trainer
    sae_params, sae_metrics = pretrain_sae(key, spec)
    env = spec.env(key_env)
    state, metrics = spec.trainer.train(key, env, sae_params)
    report = evaluate(spec, state, env, key_eval)  # NRR = L(exact) / L(policy) (Sec. V.B)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax import sae as sae_mod
from ojrs_jax.baselines import greedy, random_decision
from ojrs_jax.config import positive_int, system_config, to_container
from ojrs_jax.exact import exact_miqp, latency_np
from ojrs_jax.p2 import batched_latency
from ojrs_jax.scenario import ConfigError, Scenario, make_scenario, sample_channels
from ojrs_jax.train import Env, TrainConfig, Trainer, TrainState, make_env, make_trainer


@dataclass(frozen=True)
class RunSpec:
    """Everything static about a run, derived once from the config."""

    cfg: dict  # the resolved config as plain dicts
    scn: Scenario
    sae_cfg: sae_mod.SAEConfig
    train_cfg: TrainConfig
    trainer: Trainer
    seed: int
    pretrain_channels: int

    def keys(self) -> dict[str, jax.Array]:
        """The run's independent streams, all from `seed`."""
        names = ("sae", "env", "train", "eval")
        return dict(
            zip(names, jax.random.split(jax.random.key(self.seed), len(names)), strict=True)
        )

    def env(self, key: jax.Array | None = None) -> Env:
        return make_env(
            self.keys()["env"] if key is None else key, self.scn, self.train_cfg, self.sae_cfg
        )


def build(cfg: Any) -> RunSpec:
    """Typed, validated pieces of a run from the Hydra config (or an equivalent dict)."""
    c = to_container(cfg)
    sys_cfg = system_config(c)
    sae_cfg = sae_mod.SAEConfig.from_mapping(dict(c.get("sae", {}) or {}))
    train_cfg = TrainConfig.from_mapping(
        dict(c.get("train", {}) or {}), c.get("asa", {}), c.get("replay", {})
    )
    seed = c.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    pre = positive_int(dict(c.get("sae_pretrain", {"channels": 4096})), "channels", "sae_pretrain.")
    scn = make_scenario(sys_cfg)
    trainer = make_trainer(train_cfg, sae_cfg, sys_cfg.n_ue, sys_cfg.n_mec)
    return RunSpec(c, scn, sae_cfg, train_cfg, trainer, seed, pre)


def pretrain_sae(key: jax.Array, spec: RunSpec, n_test: int = 512) -> tuple[Any, dict]:
    """Train the SAE offline on sampled channels (T_SAE Adam steps, or chunks of them up to the
    plateau of the held-out loss when `sae.max_steps` > 0); report held-out metrics."""
    k_data, k_test, k_init, k_fit = jax.random.split(key, 4)
    stats = sae_mod.channel_stats(spec.scn, spec.sae_cfg.preprocess)
    x = sae_mod.preprocess(sample_channels(k_data, spec.scn, spec.pretrain_channels), stats)
    x_test = sae_mod.preprocess(sample_channels(k_test, spec.scn, n_test), stats)
    n_ue, n_mec = spec.scn.n_ue, spec.scn.n_mec
    params = sae_mod.init_sae(k_init, spec.sae_cfg, n_ue * n_mec, n_mec)
    t0 = time.perf_counter()
    if spec.sae_cfg.max_steps:
        params, curves, steps = sae_mod.train_sae_converged(
            k_fit, spec.sae_cfg, params, x, stats, x_test
        )
    else:
        params, curves = sae_mod.train_sae(k_fit, spec.sae_cfg, params, x, stats)
        steps = spec.sae_cfg.steps
    jax.block_until_ready(params)
    seconds = time.perf_counter() - t0
    held_out = {
        k: float(v) for k, v in sae_mod.evaluate(params, spec.sae_cfg, x_test, stats).items()
    }
    cr = sae_mod.compression_ratio(n_ue, n_mec, spec.sae_cfg.state_width(n_ue))
    return params, {
        **held_out,
        "cr": cr,
        "steps": steps,
        "seconds": seconds,
        "loss_curve": np.asarray(curves["loss"]),
    }


def final_scenario(spec: RunSpec, env: Env, epoch: int) -> Scenario:
    """The deployment with the weights in force at `epoch`."""
    w = env.weights_after if epoch >= int(env.change_epoch) else env.scn.weights
    return spec.scn.replace(weights=w)


def evaluate(
    spec: RunSpec,
    state: TrainState,
    env: Env,
    key: jax.Array,
    n_channels: int = 1000,
    exact: bool = True,
    time_limit: float = 60.0,
) -> dict[str, Any]:
    """Policy decisions (no search) on held-out channels against Greedy, Random and the exact
    optimum: NRR = mean over draws of L(exact) / L(policy) (each term in (0, 1])."""
    epoch = int(state.epoch)
    scn = final_scenario(spec, env, epoch)
    k_h, k_r = jax.random.split(key)
    H = sample_channels(k_h, scn, n_channels)
    a_pol = spec.trainer.decide(state.policy, state.sae.online, env, H)
    jax.block_until_ready(a_pol)
    l_pol = np.asarray(batched_latency(scn, H, a_pol), np.float64)
    a_g = jnp.broadcast_to(greedy(scn), a_pol.shape)
    a_r = jax.vmap(random_decision, (0, None))(jax.random.split(k_r, n_channels), scn)
    out: dict[str, Any] = {
        "epoch": epoch,
        "channels": n_channels,
        "latency_policy": float(l_pol.mean()),
        "latency_policy_median": float(np.median(l_pol)),
        "latency_greedy": float(np.mean(batched_latency(scn, H, a_g))),
        "latency_random": float(np.mean(batched_latency(scn, H, a_r))),
    }
    if exact:
        H_np = np.asarray(H, np.float64)
        warm = np.asarray(a_pol)
        res = [exact_miqp(scn, H_np[e], time_limit, warm[e]) for e in range(n_channels)]
        l_ex = np.array([r.latency for r in res])
        # the policy's latency in the same float64 model as SCIP's, for a consistent ratio
        l_pol64 = np.array([latency_np(scn, H_np[e], warm[e]) for e in range(n_channels)])
        nrr = l_ex / l_pol64
        out.update(
            latency_exact=float(l_ex.mean()),
            nrr=float(nrr.mean()),
            nrr_median=float(np.median(nrr)),
            nrr_p10=float(np.percentile(nrr, 10)),
            exact_certified=int(sum(r.status == "optimal" for r in res)),
            exact_seconds=float(np.mean([r.seconds for r in res])),
        )
    return out


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
