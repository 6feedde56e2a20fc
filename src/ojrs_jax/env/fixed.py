"""The paper's task: one fixed deployment under Rayleigh fading (Sec. III, V.A and V.E; eq. 14).

One epoch is one step: the agent sees the channel h (N, M) of the epoch, chooses an offloading
decision a (N,) (0 = local, j = MEC j), P2 allocates power and CPU in closed form (eqs. 5-13),
and the reward is 1 / L(a), L the weighted latency under the task weights in force at that
epoch: they change to `weights_after` at `change_epoch` (Sec. V.E), in force from
`t >= change_epoch` on. The fading is redrawn every epoch (i.i.d.), so epochs are independent.

    env = FixedDeployment(scn)
    params = env.default_params                    # or make_params(scn, weights_after, ...)
    obs, state = env.reset(key, params)            # obs: h (N, M)
    obs, state, reward, terminated, truncated, info = env.step(key, state, a, params)

`params` (`EnvParams`) also carries `stats`, how an agent normalises the channel before its
policy reads it (`sae.channel_map.ChannelStats`, computed from the deployment's mean gains;
None when the agent reads something else): the environment itself never uses it.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ojrs_jax.env.base import EnvState, OffloadingEnv, box
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.scenario import Scenario, sample_channel, sample_channels

NEVER = 2**30  # a change epoch (or an episode length) that is never reached


@struct.dataclass
class EnvParams:
    """The deployment and its dynamic change (all leaves: sweepable without recompiling)."""

    scn: Scenario  # deployment, weights before the change
    weights_after: chex.Array  # (N,) task weights from change_epoch on
    change_epoch: chex.Array  # () int32
    max_steps_in_episode: chex.Array  # () int32 epochs of an episode (truncated after the last)
    stats: Any = None  # the agent's channel normalisation (sae.channel_map.ChannelStats) or None


def make_params(
    scn: Scenario,
    weights_after: jax.Array | None = None,
    change_epoch: int = NEVER,
    max_epochs: int = NEVER,
    stats: Any = None,
) -> EnvParams:
    """Parameters of a deployment; without `weights_after` the weights never change."""
    w = scn.weights if weights_after is None else jnp.asarray(weights_after, scn.weights.dtype)
    return EnvParams(
        scn=scn,
        weights_after=w,
        change_epoch=jnp.asarray(change_epoch, jnp.int32),
        max_steps_in_episode=jnp.asarray(max_epochs, jnp.int32),
        stats=stats,
    )


def scenario_at(params: EnvParams, epoch: jax.Array) -> Scenario:
    """The deployment with the task weights in force at `epoch` (jit-friendly)."""
    w = jnp.where(epoch >= params.change_epoch, params.weights_after, params.scn.weights)
    return params.scn.replace(weights=w)


def draws(key: jax.Array, params: EnvParams, n: int) -> jax.Array:
    """Channels of `n` independent epochs (n, N, M), the channels drawn from each key of
    `split(key, n)` (`scenario.sample_channels`): the held-out draws the baselines, Fig. 7 and
    the evaluation score every method on, and a training block's epochs."""
    return sample_channels(key, params.scn, n)


class FixedDeployment(OffloadingEnv):
    """One deployment of N UEs and M MECs (`scenario.make_scenario`), Rayleigh fading per epoch."""

    iid = True
    gen_needs_key = False

    def __init__(self, scn: Scenario) -> None:
        self.scn = scn
        self.n_ue, self.n_mec = scn.n_ue, scn.n_mec

    @property
    def default_params(self) -> EnvParams:
        return make_params(self.scn)

    def init_gen(self, key: jax.Array, params: EnvParams) -> tuple:
        return ()

    def draw(
        self, key: jax.Array, gen: tuple, time: jax.Array, params: EnvParams
    ) -> tuple[tuple, Problem]:
        """Epoch `time`: the deployment with its weights in force and a fresh Rayleigh channel."""
        h = sample_channel(key, params.scn)
        return gen, Problem(dep=from_scenario(scenario_at(params, time)), h=h)

    def get_obs(self, state: EnvState, params: Any = None, key: jax.Array | None = None):
        return state.problem.h

    def observation_space(self, params: Any = None) -> Any:
        return box(0.0, jnp.inf, (self.n_ue, self.n_mec))
