"""The task over a distribution of deployments: random or moving UEs, padded with masks (eqs. 1-3).

Every epoch's problem comes from a `system.deployment.Sampler`: a `random` deployment drawn anew
each epoch (N, M, tasks, MECs and positions), or a `mobile` one whose UEs walk between epochs
under time-correlated fading, redrawn every `episode` epochs. Deployments are padded to the
static sizes (N_max, M_max) of `DeploymentConfig` with masks of the real UEs and MECs, so one
compiled program serves every N and M of the range.

The observation is the epoch's whole problem, the padded deployment and its channel, flattened
into one float32 vector (`unpack` gives the `Problem` back): a policy for any deployment (the
feature policy) reads it all. An episode lasts `max_steps_in_episode` epochs (the mobile
distribution's `episode` by default); the reward is 1 / L(a) on the real UEs and MECs.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

from ojrs_jax.env.base import EnvState, OffloadingEnv, box
from ojrs_jax.system.deployment import DeploymentConfig, Problem, make_sampler
from ojrs_jax.system.scenario import SystemConfig


@struct.dataclass
class DistributionParams:
    """What may change without recompiling: the episode length."""

    max_steps_in_episode: chex.Array  # () int32


class DeploymentDistribution(OffloadingEnv):
    """Deployments of `cfg.kind` random or mobile, padded to (cfg.n_max, cfg.m_max)."""

    def __init__(self, cfg: DeploymentConfig, sys: SystemConfig) -> None:
        if cfg.kind == "fixed":
            raise ValueError("deployment.kind=fixed is the FixedDeployment environment")
        self.cfg, self.sys = cfg, sys
        self.sampler = make_sampler(cfg, sys)
        self.n_ue, self.n_mec = cfg.n_max, cfg.m_max
        self.iid = cfg.kind == "random"
        gen0 = self.sampler.init(jax.random.key(0))
        _, dep0, h0 = jax.eval_shape(self.sampler.step, jax.random.key(0), gen0)
        self._template = Problem(
            dep=jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), dep0),
            h=jnp.ones(h0.shape, h0.dtype),
        )
        flat, self._unravel = ravel_pytree(self._template)
        self.obs_size = int(flat.shape[0])

    @property
    def template(self) -> Problem:
        """A problem of the padded shapes (zeros; every UE and MEC padded)."""
        return self._template

    @property
    def default_params(self) -> DistributionParams:
        episode = self.cfg.episode if self.cfg.kind == "mobile" else 100
        return DistributionParams(max_steps_in_episode=jnp.asarray(episode, jnp.int32))

    def init_gen(self, key: jax.Array, params: Any) -> Any:
        return self.sampler.init(key)

    def draw(self, key: jax.Array, gen: Any, time: jax.Array, params: Any) -> tuple[Any, Problem]:
        gen, dep, h = self.sampler.step(key, gen)
        return gen, Problem(dep=dep, h=h)

    def pack(self, problem: Problem) -> jax.Array:
        """The problem as one float32 vector (the observation and the replay's stored state)."""
        return ravel_pytree(problem)[0]

    def unpack(self, obs: jax.Array) -> Problem:
        """The problem of an observation (`pack`'s inverse)."""
        return self._unravel(obs)

    def get_obs(self, state: EnvState, params: Any = None, key: jax.Array | None = None):
        return self.pack(state.problem)

    def observation_space(self, params: Any = None) -> Any:
        return box(-jnp.inf, jnp.inf, (self.obs_size,))
