"""The offloading task as a gymnax-style environment (paper Sec. III and the MDP of Sec. IV.C).

One epoch is one step: the agent sees the channel h (N, M) of the epoch, chooses an offloading
decision a (N,) (0 = local, j = MEC j), P2 allocates power and CPU in closed form (eqs. 5-13),
and the reward is 1 / L(a) with L the weighted latency under the task weights in force at that
epoch (they change at `change_epoch`, Sec. V.E; in force from `t >= change_epoch` on).
Pure functions with the key first, as in gymnax:

    obs, state = reset(key, params)
    obs, state, reward, done, info = step(key, state, action, params)

`params` is any pytree with `scn`, `weights_after` and `change_epoch`: an `EnvParams`, or the
trainer's `ojrs_jax.agent.trainer.Env`, so an agent written against this module runs on a trainer's
environment unchanged. The trainer itself draws a block's channels with `draws`, scores its
actions with `reward` and hands ASA the deployment `scenario_at` the epoch. Sizes come from
the scenario's array shapes (static under `jit`).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ojrs_jax.system.p2 import latency
from ojrs_jax.system.scenario import Scenario, sample_channel, sample_channels

NEVER = 2**30  # a change epoch that is never reached


@struct.dataclass
class EnvParams:
    """The deployment and its dynamic change (all leaves: sweepable without recompiling)."""

    scn: Scenario  # deployment, weights before the change
    weights_after: chex.Array  # (N,) task weights from change_epoch on
    change_epoch: chex.Array  # () int32
    max_epochs: chex.Array  # () int32 epochs of an episode (done after the last)


@struct.dataclass
class EnvState:
    """Where the episode is: the channel the agent is looking at and the epoch it belongs to."""

    h: chex.Array  # (N, M) channel of the current epoch
    epoch: chex.Array  # () int32 index of the current epoch


def make_params(
    scn: Scenario,
    weights_after: jax.Array | None = None,
    change_epoch: int = NEVER,
    max_epochs: int = NEVER,
) -> EnvParams:
    """Parameters of a deployment; without `weights_after` the weights never change."""
    w = scn.weights if weights_after is None else jnp.asarray(weights_after, scn.weights.dtype)
    return EnvParams(
        scn=scn,
        weights_after=w,
        change_epoch=jnp.asarray(change_epoch, jnp.int32),
        max_epochs=jnp.asarray(max_epochs, jnp.int32),
    )


def scenario_at(params: Any, epoch: jax.Array) -> Scenario:
    """The deployment with the task weights in force at `epoch` (jit-friendly)."""
    w = jnp.where(epoch >= params.change_epoch, params.weights_after, params.scn.weights)
    return params.scn.replace(weights=w)


def reward(
    params: Any, epoch: jax.Array, h: jax.Array, action: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reward 1/L of `action` (N,) on channel h at `epoch`, and the weighted latency L (eq. 14)."""
    lat = latency(scenario_at(params, epoch), h, action)
    return 1.0 / lat, lat


def reset(key: jax.Array, params: Any) -> tuple[jax.Array, EnvState]:
    """Epoch 0: the first channel h (N, M) and the state."""
    h = sample_channel(key, params.scn)
    return h, EnvState(h=h, epoch=jnp.zeros((), jnp.int32))


def draws(key: jax.Array, params: Any, n: int) -> jax.Array:
    """Channels of `n` independent epochs (n, N, M), the channels `reset` draws from each key of
    `split(key, n)` (`scenario.sample_channels`): a training block's epochs, and the held-out
    draws the baselines, Fig. 7 and the evaluation score every method on."""
    return sample_channels(key, params.scn, n)


def step(
    key: jax.Array, state: EnvState, action: jax.Array, params: Any
) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, jax.Array]]:
    """Score `action` (N,) on the current channel, then draw the next epoch's channel.

    Returns (next h, next state, reward 1/L, done, info with the latency L)."""
    chex.assert_shape(action, state.h.shape[:1])
    r, lat = reward(params, state.epoch, state.h, action)
    h = sample_channel(key, params.scn)
    epoch = state.epoch + 1
    done = epoch >= getattr(params, "max_epochs", NEVER)
    return h, EnvState(h=h, epoch=epoch), r, done, {"latency": lat}
