"""Offline training of the 2r-SAE (paper Algorithm 1, lines 5-10): Adam on eq. 23's loss.

`train_sae` takes T_SAE = `steps` Adam steps (the paper's 500, which leaves the models
undertrained: Acc 0.87 at M = 1, where the identity is representable), as one scan. With
`max_steps` > 0, `train_sae_converged` runs chunks of `steps` steps until one chunk lowers the
held-out loss (mean of its last tenth of steps) by at most `plateau_tol` (relative); then the Adam
step size is cut 5x and training goes on, `plateau_decays` times, and the next plateau (or
`max_steps`) ends it. The step size lives in the Adam state (`optimizer` injects it), so a cut
(`scale_learning_rate`) needs no recompilation; incremental learning uses the same cut to run at
`retrain_learning_rate`. Every name here stays reachable as `sae.<name>`.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import numpy as np
import optax

from ojrs_jax.core.progress import bar
from ojrs_jax.sae.channel_map import ChannelStats, postprocess, reconstruction_accuracy
from ojrs_jax.sae.model import Params, SAEConfig, loss_terms, reconstruct, sae_loss, total_loss


def optimizer(cfg: SAEConfig) -> optax.GradientTransformation:
    """Adam with the configured step size (eq. 22 with an adaptive step), injected into the state
    so that `run_to_plateau` can cut it without recompiling."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=cfg.learning_rate)


def scale_learning_rate(opt_state: Any, factor: float) -> Any:
    """The Adam state of `optimizer` with its step size multiplied by `factor`."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = hp["learning_rate"] * factor
    return opt_state._replace(hyperparams=hp)


def adam_step(
    params: Params, opt_state: optax.OptState, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    def f(p):
        terms = loss_terms(p, cfg, x, stats)
        return total_loss(terms, cfg), terms

    (loss, terms), grads = jax.value_and_grad(f, has_aux=True)(params)
    updates, opt_state = optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": loss, **terms}


def _scan_steps(key, cfg, params, opt_state, x, stats, x_test):
    chex.assert_rank(x, 2)

    def body(carry, k):
        params, opt_state = carry
        idx = jax.random.randint(k, (cfg.batch_size,), 0, x.shape[0])
        params, opt_state, out = adam_step(params, opt_state, cfg, x[idx], stats)
        if x_test is not None:
            out["test_loss"] = sae_loss(params, cfg, x_test, stats)
            xh = reconstruct(params, cfg, x_test)
            out["test_acc"] = reconstruction_accuracy(
                postprocess(x_test, stats), postprocess(xh, stats)
            )
        return (params, opt_state), out

    (params, opt_state), metrics = jax.lax.scan(
        body, (params, opt_state), jax.random.split(key, cfg.steps)
    )
    return params, opt_state, metrics


@functools.partial(jax.jit, static_argnames=("cfg",))
def train_sae(
    key: jax.Array,
    cfg: SAEConfig,
    params: Params,
    x: jax.Array,
    stats: ChannelStats,
    x_test: jax.Array | None = None,
) -> tuple[Params, dict[str, jax.Array]]:
    """`cfg.steps` Adam steps on minibatches of x (E, N*M), as one scan.

    Returns the trained parameters and metrics stacked over steps (each (steps,)): the minibatch
    `loss` before the step and its terms `mse`, `rel`, `l2`; with x_test, the `test_loss` and the
    held-out `test_acc` after the step.
    """
    params, _, metrics = _scan_steps(
        key, cfg, params, optimizer(cfg).init(params), x, stats, x_test
    )
    return params, metrics


@functools.partial(jax.jit, static_argnames=("cfg",))
def train_chunk(
    key: jax.Array,
    cfg: SAEConfig,
    params: Params,
    opt_state: optax.OptState,
    x: jax.Array,
    stats: ChannelStats,
    x_test: jax.Array,
) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    """`train_sae` continued from an Adam state: one chunk of `cfg.steps` steps of a longer run."""
    return _scan_steps(key, cfg, params, opt_state, x, stats, x_test)


def plateau_reached(val_losses: list[float], tol: float) -> bool:
    """The stopping rule: the last chunk lowered the held-out loss by at most `tol` (relative)."""
    if len(val_losses) < 2:
        return False
    prev, last = val_losses[-2], val_losses[-1]
    return prev - last <= tol * abs(prev)


def run_to_plateau(
    key: jax.Array, cfg: SAEConfig, chunk: Any, carry: Any, decay: Any = None
) -> tuple[Any, dict[str, np.ndarray], int]:
    """Host loop of training chunks until the plateau rule ends it or `cfg.max_steps` steps.

    `chunk(key, carry) -> (carry, metrics)` runs `cfg.steps` Adam steps; metrics["test_loss"]
    (..., steps) may carry leading axes (vmapped seeds): the rule reads the mean over them of
    the chunk's last 10% of steps. On a plateau (`plateau_reached`), `decay(carry, 0.2)` cuts
    the step size and training goes on, `cfg.plateau_decays` times; the next plateau stops it.
    Returns the carry, the curves joined along the step axis, and the number of steps taken.
    With `max_steps` 0 it runs one chunk (the fixed T_SAE).
    """
    n_chunks = max(1, -(-cfg.max_steps // cfg.steps)) if cfg.max_steps else 1
    tail = max(1, cfg.steps // 10)
    curves, vals, decays = [], [], 0
    with bar(total=n_chunks * cfg.steps, desc="SAE to plateau", unit="step") as pbar:
        for _ in range(n_chunks):
            key, k = jax.random.split(key)
            carry, m = chunk(k, carry)
            curves.append(jax.tree.map(np.asarray, m))
            vals.append(float(np.mean(curves[-1]["test_loss"][..., -tail:])))
            pbar.update(cfg.steps)
            pbar.set_postfix(test_loss=f"{vals[-1]:.4g}", decays=decays)
            if plateau_reached(vals, cfg.plateau_tol):
                if decay is None or decays >= cfg.plateau_decays:
                    break
                carry, decays, vals = decay(carry, 0.2), decays + 1, vals[-1:]
    joined = {k: np.concatenate([c[k] for c in curves], axis=-1) for k in curves[0]}
    return carry, joined, len(curves) * cfg.steps


def decay_carry(carry: tuple[Params, Any], factor: float) -> tuple[Params, Any]:
    """`run_to_plateau`'s `decay` for a (params, Adam state) carry."""
    return carry[0], scale_learning_rate(carry[1], factor)


def train_best_of(
    key: jax.Array,
    cfg: SAEConfig,
    starts: Params,
    x: jax.Array,
    stats: ChannelStats,
    x_val: jax.Array,
    keep_all: bool = False,
) -> tuple[Params, dict[str, np.ndarray], int, np.ndarray]:
    """Train several initialisations (stacked along a leading axis) together, vmapped on the same
    minibatches, to the plateau of their mean held-out loss (`run_to_plateau`; one chunk with
    `max_steps` 0), and keep the one whose held-out loss is lowest at the end (mean over the
    last tenth of the last chunk). Some initialisations of the per-UE SAE end in a poor minimum
    (held-out MSE 0.26-0.31 against 0.04-0.07; the DRL on such a code fails), and the first
    chunk does not tell them apart. Returns the kept parameters, its curves, the steps taken and
    every initialisation's final held-out loss; with `keep_all` the parameters of every
    initialisation (stacked), for a later choice by another criterion (`train.warm_start`)."""

    def chunk(k, carry):
        p, o, m = jax.vmap(lambda p_, o_: train_chunk(k, cfg, p_, o_, x, stats, x_val))(*carry)
        return (p, o), m

    opt0 = jax.vmap(optimizer(cfg).init)(starts)
    decay = jax.vmap(decay_carry, in_axes=(0, None))
    (params, _), curves, steps = run_to_plateau(key, cfg, chunk, (starts, opt0), decay)
    tail = max(1, cfg.steps // 10)
    scores = np.asarray(curves["test_loss"])[:, -tail:].mean(axis=1)
    best = int(np.argmin(scores))
    pick = params if keep_all else jax.tree.map(lambda a: a[best], params)
    return pick, {k: v[best] for k, v in curves.items()}, steps, scores


def train_sae_converged(
    key: jax.Array,
    cfg: SAEConfig,
    params: Params,
    x: jax.Array,
    stats: ChannelStats,
    x_val: jax.Array,
) -> tuple[Params, dict[str, np.ndarray], int]:
    """Train one SAE to the plateau of its held-out loss on x_val (see `run_to_plateau`)."""

    def chunk(k, carry):
        p, o, m = train_chunk(k, cfg, carry[0], carry[1], x, stats, x_val)
        return (p, o), m

    (params, _), curves, steps = run_to_plateau(
        key, cfg, chunk, (params, optimizer(cfg).init(params)), decay_carry
    )
    return params, curves, steps
