"""The environment interface of gymnax 1.0, and what Algorithm 3 asks of an offloading task.

An environment is a Python object holding static sizes (Python ints) and pure functions with
the key first; every number that may be swept lives in a `params` pytree. The public
`reset(key, params)` and `step(key, state, action, params)` follow gymnax 1.0's
`gymnax.environments.environment.Environment` to the letter (`step` returns `(obs, state,
reward, terminated, truncated, info)` and resets automatically when the episode ends, putting
the last observation in `info["final_observation"]`), so gymnax's own wrappers (`LogWrapper`,
`FlattenObservationWrapper`) and a purejaxrl-style loop run an offloading environment unchanged
(tests/test_env.py checks it against gymnax itself, the optional extra `ojrs-jax[gymnax]`).
The package does not import gymnax: the interface is a dozen lines, and gymnax brings
gymnasium, seaborn and their dependencies.

An epoch of the offloading task is one step. Its decision problem (P1 of Sec. III) is a
`system.deployment.Problem`: the deployment in force with the channel of the epoch. The channel
process is exogenous (the action does not change the next channel), so Algorithm 3 draws the
problems of a block of phi epochs ahead with `rollout` and scores its decisions on them; a
subclass says how one epoch is drawn (`draw`) and whether epochs are independent (`iid`: then
`rollout` vmaps the draws instead of scanning them).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ojrs_jax.system.deployment import Problem, decision, problem_latency


@struct.dataclass
class EnvState:
    """Where an episode is: the epoch's problem, the generator of the next, the epoch's index."""

    problem: Problem  # the decision problem of the current epoch (deployment and channel)
    gen: Any  # state the next epoch is drawn from (mobility and fading), () when i.i.d.
    time: chex.Array  # () int32 epochs since the reset


class MultiDiscrete:
    """N independent choices among n options each (a decision a in {0..M}^N), in the style of
    gymnax's spaces: `sample(key)`, `contains(x)`, `shape`, `dtype` and `n`."""

    def __init__(self, n: int, shape: tuple[int, ...], dtype: Any = jnp.int32) -> None:
        self.n, self.shape, self.dtype = int(n), tuple(shape), dtype

    def __repr__(self) -> str:
        return f"MultiDiscrete({self.n}, shape={self.shape})"

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.zeros((), bool)
        return jnp.logical_and(jnp.all(x >= 0), jnp.all(x < self.n))


class Box:
    """Real arrays between `low` and `high`, in the style of gymnax's `spaces.Box`."""

    def __init__(self, low: Any, high: Any, shape: tuple[int, ...], dtype: Any = jnp.float32):
        self.low, self.high, self.shape, self.dtype = low, high, tuple(shape), dtype

    def __repr__(self) -> str:
        return f"Box(shape={self.shape}, dtype={jnp.dtype(self.dtype).name})"

    def sample(self, key: jax.Array) -> jax.Array:
        lo = jnp.maximum(jnp.asarray(self.low, jnp.float32), -1e6)
        hi = jnp.minimum(jnp.asarray(self.high, jnp.float32), 1e6)
        return jax.random.uniform(key, self.shape, minval=lo, maxval=hi).astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        return jnp.logical_and(jnp.all(x >= self.low), jnp.all(x <= self.high))


def box(low: Any, high: Any, shape: tuple[int, ...]) -> Any:
    """An observation space: gymnax's `spaces.Box` when gymnax is installed (its wrappers check
    the type, e.g. `FlattenObservationWrapper`), else this module's `Box` of the same interface."""
    try:
        from gymnax.environments import spaces
    except ImportError:  # gymnax is an optional extra (ojrs-jax[gymnax])
        return Box(low, high, shape)
    return spaces.Box(low, high, shape, jnp.float32)


class OffloadingEnv:
    """An offloading task with gymnax's interface: one epoch per step, reward 1 / L(a).

    Subclasses set `n_ue` and `n_mec` (static, padded sizes) and implement `default_params`,
    `draw(key, gen, time, params) -> (gen, problem)` (the problem of epoch `time` and the
    generator of the next), `init_gen(key, params)`, `get_obs(state, params)` and
    `observation_space(params)`.
    """

    n_ue: int
    n_mec: int
    iid: bool = False  # epochs independent of each other: `rollout` vmaps instead of scanning
    gen_needs_key: bool = True  # `init_gen` draws something (a fixed deployment does not)

    # --- what a subclass provides --------------------------------------------------------------

    @property
    def default_params(self) -> Any:
        raise NotImplementedError

    def init_gen(self, key: jax.Array, params: Any) -> Any:
        raise NotImplementedError

    def draw(self, key: jax.Array, gen: Any, time: jax.Array, params: Any) -> tuple[Any, Problem]:
        raise NotImplementedError

    def get_obs(self, state: EnvState, params: Any = None, key: jax.Array | None = None) -> Any:
        raise NotImplementedError

    def observation_space(self, params: Any) -> Box:
        raise NotImplementedError

    # --- gymnax's interface --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        """Options of one UE: local or one of the M MECs."""
        return self.n_mec + 1

    def action_space(self, params: Any = None) -> MultiDiscrete:
        """A decision a (N,): a_i = 0 runs task i locally, a_i = j offloads it to MEC j."""
        return MultiDiscrete(self.n_mec + 1, (self.n_ue,))

    def reset_env(self, key: jax.Array, params: Any) -> tuple[Any, EnvState]:
        """Epoch 0 of an episode (for i.i.d. epochs the problem `draw` gives from `key`)."""
        if self.gen_needs_key:
            k_gen, key = jax.random.split(key)
            gen = self.init_gen(k_gen, params)
        else:
            gen = self.init_gen(None, params)
        gen, problem = self.draw(key, gen, jnp.zeros((), jnp.int32), params)
        state = EnvState(problem=problem, gen=gen, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: Any
    ) -> tuple[Any, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        """Score `action` on the epoch's problem (reward 1 / L), then draw the next epoch. On a
        padded deployment a padded UE's choice is ignored and a real UE choosing a padded MEC
        runs locally (`deployment.decision`)."""
        chex.assert_shape(action, (self.n_ue,))
        lat = problem_latency(state.problem, decision(state.problem.dep, action))
        time = state.time + 1
        gen, problem = self.draw(key, state.gen, time, params)
        nxt = EnvState(problem=problem, gen=gen, time=time)
        terminated = jnp.zeros((), bool)  # the task never ends by itself; episodes are cut
        return self.get_obs(nxt, params), nxt, 1.0 / lat, terminated, {"latency": lat}

    def is_truncated(self, state: EnvState, params: Any) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def is_terminal(self, state: EnvState, params: Any) -> jax.Array:
        return self.is_truncated(state, params)

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, EnvState]:
        """gymnax's `reset`: the first observation and state of an episode."""
        return self.reset_env(key, self.default_params if params is None else params)

    @partial(jax.jit, static_argnums=(0,))
    def step(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: Any = None
    ) -> tuple[Any, EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """gymnax 1.0's `step`: a transition, and a reset when the episode is over."""
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, info = self.step_env(key_step, state, action, params)
        truncated = self.is_truncated(state_st, params)
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = self.reset_env(key_reset, params)
        state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
        obs = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), obs_re, obs_st)
        info = {
            **info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_st,
        }
        return obs, state, reward, terminated, truncated, info

    # --- what Algorithm 3 and the evaluation use ------------------------------------------------

    def rollout(
        self, key: jax.Array, gen: Any, time: jax.Array, params: Any, n: int
    ) -> tuple[Any, Problem]:
        """The problems of epochs time, ..., time + n - 1 drawn from `gen` (stacked along a
        leading axis of n), and the generator of the epoch after them. Epoch i uses the key
        `split(key, n)[i]`."""
        keys = jax.random.split(key, n)
        times = time + jnp.arange(n, dtype=jnp.int32)
        if self.iid:
            _, problems = jax.vmap(self.draw, (0, None, 0, None))(keys, gen, times, params)
            return gen, problems

        def body(g, kt):
            return self.draw(kt[0], g, kt[1], params)

        return jax.lax.scan(body, gen, (keys, times))
