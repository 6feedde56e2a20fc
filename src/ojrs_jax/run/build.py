"""A run from its config: typed settings, environment, agent and trainer; SAE pretraining.

Used by `ojrs-train` (`run.train`), the notebooks and the reproduction jobs, so that each of
them builds a run the same way from one plain config dict (the resolved Hydra config):

    spec = build(cfg)                          # typed configs + environment + agent + trainer
    sae_params, sae_metrics = initial_sae(key, spec)
    params = spec.env_params()                 # the fixed deployment's weight change
    state, metrics = spec.trainer.train(key, params, sae_params)
    report = evaluate_run(spec.trainer, state, params, key_eval)  # ojrs_jax.run.evaluation
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent.agents import make_agent
from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.trainer import Trainer, make_env, make_trainer
from ojrs_jax.core.progress import log_summary
from ojrs_jax.core.settings import ConfigError, positive_int, seed_value
from ojrs_jax.env.base import OffloadingEnv
from ojrs_jax.env.distribution import DeploymentDistribution
from ojrs_jax.env.fixed import FixedDeployment
from ojrs_jax.run.checkpoint import first_mismatch
from ojrs_jax.run.rundir import read_policy
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.sae import train as sae_train
from ojrs_jax.system.deployment import DeploymentConfig
from ojrs_jax.system.scenario import (
    Scenario,
    SystemConfig,
    make_scenario,
    sample_channels,
    system_config,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """Everything static about a run, derived once from the config."""

    cfg: dict  # the resolved config as plain dicts
    sys_cfg: SystemConfig
    deployment: DeploymentConfig  # the task: kind fixed (the `scale` group's), random or mobile
    scn: Scenario | None  # the fixed deployment (None for a distribution of deployments)
    sae_cfg: sae_mod.SAEConfig
    train_cfg: TrainConfig
    trainer: Trainer
    seed: int
    pretrain_draws: int

    @property
    def env(self) -> OffloadingEnv:
        return self.trainer.env

    def keys(self) -> dict[str, jax.Array]:
        """The run's independent streams, all from `seed`."""
        names = ("sae", "env", "train", "eval")
        return dict(
            zip(names, jax.random.split(jax.random.key(self.seed), len(names)), strict=True)
        )

    def env_params(self, key: jax.Array | None = None) -> Any:
        """The environment's parameters: for the fixed deployment its weight change (drawn
        from `key`, by default the run's) and the agent's channel statistics (`make_env`)."""
        if self.scn is None:
            return self.env.default_params
        key = self.keys()["env"] if key is None else key
        return make_env(key, self.scn, self.train_cfg, self.sae_cfg)


def make_environment(dcfg: DeploymentConfig, sys_cfg: SystemConfig) -> OffloadingEnv:
    """The task of the `deployment` group: the `scale` group's deployment (kind fixed) or a
    distribution of deployments (random, mobile)."""
    if dcfg.kind == "fixed":
        return FixedDeployment(make_scenario(sys_cfg))
    return DeploymentDistribution(dcfg, sys_cfg)


def build(cfg: dict) -> RunSpec:
    """Typed, validated pieces of a run from the resolved config as a plain dict (the Hydra app
    layer converts its `DictConfig` once: `app.hydra.to_container`)."""
    if not isinstance(cfg, dict):
        raise TypeError(f"build takes a plain dict of settings, got {type(cfg).__name__}")
    c = cfg
    # each group parsed by its own typed config, the agent's first and the system's last
    train_cfg = TrainConfig.from_mapping(
        dict(c.get("train", {}) or {}), c.get("asa", {}), c.get("replay", {})
    )
    sae_cfg = sae_mod.SAEConfig.from_mapping(dict(c.get("sae", {}) or {}))
    dcfg = DeploymentConfig.from_mapping(dict(c.get("deployment") or {"kind": "fixed"}))
    sys_cfg = system_config(c)
    seed = seed_value(c)
    pre = positive_int(dict(c.get("sae_pretrain", {"draws": 4096})), "draws", "sae_pretrain.")
    _warn_unused_incremental(train_cfg, sae_cfg)
    env = make_environment(dcfg, sys_cfg)
    agent = make_agent(train_cfg, sae_cfg, env)
    if train_cfg.init_from:  # fine-tuning: the policy of a finished run starts this one
        start = read_policy(train_cfg.init_from)
        bad = first_mismatch(start, jax.eval_shape(agent.init, jax.random.key(0)), dtypes=False)
        if bad is not None:
            raise ConfigError(
                f"train.init_from: the policy of {train_cfg.init_from} does not fit "
                f"train.arch={train_cfg.arch} with these settings: parameter {bad}"
            )
        agent = make_agent(train_cfg, sae_cfg, env, start)
    trainer = make_trainer(train_cfg, env, agent, sae_cfg)
    scn = env.scn if isinstance(env, FixedDeployment) else None
    return RunSpec(c, sys_cfg, dcfg, scn, sae_cfg, train_cfg, trainer, seed, pre)


# Algorithm 1's own settings: the SAE's separate online learning from a FIFO memory
INCREMENTAL_SETTINGS = (
    "memory_size",
    "error_threshold",
    "retrain_steps",
    "retrain_learning_rate",
    "sync_period",
)


def _warn_unused_incremental(train_cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig) -> None:
    """With train.code_weight > 0 the SAE learns in the policy's own Adam step, so Algorithm 1's
    memory and retraining settings do nothing: a changed one is named in a warning."""
    if train_cfg.code_weight <= 0:
        return
    default = sae_mod.SAEConfig()
    changed = [
        f"sae.{name}"
        for name in INCREMENTAL_SETTINGS
        if getattr(sae_cfg, name) != getattr(default, name)
    ]
    if changed:
        warnings.warn(
            f"{', '.join(changed)} {'has' if len(changed) == 1 else 'have'} no effect with "
            "train.code_weight > 0: the SAE then learns in the policy's Adam step (step size "
            "train.learning_rate, every training round), not from Algorithm 1's memory",
            UserWarning,
            stacklevel=3,
        )


def initial_sae(key: jax.Array, spec: RunSpec) -> tuple[Any, dict]:
    """The SAE a run starts from: pretrained (`pretrain_sae`) when the policy reads its code
    (train.state=sae); untrained when the policy reads the channel (the code only fills the
    state's slot); none when it reads a whole deployment."""
    if spec.train_cfg.state == "sae":
        return pretrain_sae(key, spec)
    if spec.scn is None or spec.train_cfg.any_deployment:
        return None, {"seconds": 0.0, "pretrained": False}
    n_ue, n_mec = spec.scn.n_ue, spec.scn.n_mec
    return sae_mod.init_sae(key, spec.sae_cfg, n_ue * n_mec, n_mec), {
        "seconds": 0.0,
        "pretrained": False,
    }


def pretrain_sae(key: jax.Array, spec: RunSpec, n_test: int = 512) -> tuple[Any, dict]:
    """Train the SAE offline on sampled channels (T_SAE Adam steps, or chunks of them up to the
    plateau of the held-out loss when `sae.max_steps` > 0); report held-out metrics."""
    k_data, k_test, k_init, k_fit = jax.random.split(key, 4)
    stats = channel_map.channel_stats(spec.scn, spec.sae_cfg.preprocess)
    x = channel_map.preprocess(sample_channels(k_data, spec.scn, spec.pretrain_draws), stats)
    x_test = channel_map.preprocess(sample_channels(k_test, spec.scn, n_test), stats)
    n_ue, n_mec = spec.scn.n_ue, spec.scn.n_mec
    cfg = spec.sae_cfg
    chosen: dict[str, Any] = {}
    keep_all = False  # every initialisation kept (stacked) for the warm start to choose
    log.info(
        "SAE pretraining: %s, %s steps on %d channels, %d initialisation(s) ...",
        cfg.variant,
        f"up to {cfg.max_steps}" if cfg.max_steps else cfg.steps,
        spec.pretrain_draws,
        cfg.restarts,
    )
    t0 = time.perf_counter()
    if cfg.restarts > 1:  # initialisation r > 0 from fold_in(k_init, r); r = 0 is the default's
        inits = [k_init] + [jax.random.fold_in(k_init, r) for r in range(1, cfg.restarts)]
        starts = [sae_mod.init_sae(k, cfg, n_ue * n_mec, n_mec) for k in inits]
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *starts)
        # with a warm start every initialisation is kept: the joint agent fits each to the ASA
        # labels and keeps the one that decides best on held-out labels (agents._joint_agent)
        keep_all = spec.train_cfg.warm_start > 0
        params, curves, steps, scores = sae_train.train_best_of(
            k_fit, cfg, stacked, x, stats, x_test, keep_all=keep_all
        )
        best = int(np.argmin(scores))
        chosen = {"restart_losses": [float(v) for v in scores]}
        if not keep_all:
            chosen["restart"] = best
        log.info(
            "SAE restarts: final held-out losses %s, %s",
            [round(float(v), 4) for v in scores],
            "all kept for the warm start" if keep_all else f"initialisation {best} kept",
        )
    elif cfg.max_steps:
        params = sae_mod.init_sae(k_init, cfg, n_ue * n_mec, n_mec)
        params, curves, steps = sae_train.train_sae_converged(k_fit, cfg, params, x, stats, x_test)
    else:
        params = sae_mod.init_sae(k_init, cfg, n_ue * n_mec, n_mec)
        params, curves = sae_train.train_sae(k_fit, cfg, params, x, stats)
        steps = cfg.steps
    jax.block_until_ready(params)
    seconds = time.perf_counter() - t0
    # held-out metrics of the lowest loss (the kept initialisation without a warm start)
    shown = jax.tree.map(lambda a: a[best], params) if keep_all else params
    held_out = {
        k: float(v) for k, v in sae_mod.evaluate(shown, spec.sae_cfg, x_test, stats).items()
    }
    cr = sae_mod.compression_ratio(n_ue, n_mec, spec.sae_cfg.state_width(n_ue))
    log_summary(
        log,
        "SAE pretraining done",
        {"steps": steps, "seconds": seconds, "held-out Acc": held_out.get("acc"), "CR": cr},
    )
    return params, {
        **held_out,
        "cr": cr,
        "steps": steps,
        **chosen,
        "seconds": seconds,
        "loss_curve": np.asarray(curves["loss"]),
    }
