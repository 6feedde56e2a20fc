"""Replay buffers: 2p-ER, preserved and prioritized experience replay (paper Sec. IV.E, eqs. 31-32).

A transition is the pair (s, a*) of a state s (D,) and the action a* (N,) found by ASA, plus the
bookkeeping 2p-ER needs: ||theta||^2 of the policy when it was collected, the priority p_i, the
insertion time and a validity flag. Everything is a pure function over a `ReplayState`
(flashbax style); `make_per_buffer` / `make_uniform_buffer` validate the static sizes in Python
and bind them, so the training loop switches with `make_buffer(kind)` (`replay: per | uniform`).

Preserve strategy (eq. 31). With ||theta_t||^2 the norm of the current policy (the
`theta_norm_sq` passed to `add`) and ||theta_{t0,i}||^2 the one stored with transition i,

    rho_i = ||theta_t||^2 / ||theta_{t0,i}||^2,   preserved iff 1/rho_max < rho_i < rho_max.

While the buffer has free slots a new transition takes the first free one. Once it is full, FIFO
overwrites the oldest transition that is *not* preserved. Choice of this project: if every stored
transition is preserved, the oldest one overall is overwritten, so the buffer always accepts new
data (otherwise a slowly moving policy would freeze the buffer forever).

Priority strategy (eq. 32). Over the valid transitions K,

    P_i = p_i^tau / sum_{k in K} p_k^tau,   p_i = |Delta-delta_t| + epsilon,

where Delta-delta_t is the decrease of the loss achieved by the training step on the batch that
contained i (`set_priorities`). A new transition enters with the largest priority stored at the
time of the add (1.0 into an empty buffer), so it is sampled at least once with high probability.
tau is not given by the paper; 0.6 (the PER default of Schaul et al.) is ours. rho_max, tau and
epsilon live in `PERParams`, a pytree carried in the state, so they can be swept or vmapped
without recompiling. Sampling is with replacement and never returns an invalid slot (sampling an
empty buffer returns slot 0, whose contents are zeros: add before sampling).

The "traditional DRL" comparison uses `uniform_*`: plain FIFO (overwrite the oldest), uniform
sampling over the valid slots, `set_priorities` a no-op, same state type and same signatures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ojrs_jax.core import ring
from ojrs_jax.core.settings import ConfigError

REPLAY_KINDS = ("per", "uniform")


@struct.dataclass
class PERParams:
    """Sweepable 2p-ER hyperparameters (pytree leaves)."""

    rho_max: chex.Array | float = 1.2  # () preserve band (1/rho_max, rho_max), paper Sec. V.A
    tau: chex.Array | float = 0.6  # () priority exponent of eq. 32 (our choice; not in the paper)
    epsilon: chex.Array | float = 0.001  # () priority floor of eq. 32, paper Sec. V.A


@struct.dataclass
class ReplayState:
    """Buffer contents and bookkeeping; C = capacity, D = state dim, N = number of UEs."""

    s: chex.Array  # (C, D) float32 states
    a: chex.Array  # (C, N) int32 searched actions a*
    theta_norm0: chex.Array  # (C,) float32 ||theta||^2 of the policy that collected the slot
    priority: chex.Array  # (C,) float32 p_i (1.0 in the uniform buffer)
    inserted: chex.Array  # (C,) int32 add counter when the slot was written (age = count - it)
    valid: chex.Array  # (C,) bool slot holds a transition
    count: chex.Array  # () int32 number of adds so far (the next insertion time)
    params: PERParams  # () leaves; ignored by the uniform buffer


class ReplayBuffer(NamedTuple):
    """Bound buffer functions; both kinds share these signatures."""

    init: Callable[..., ReplayState]  # (params=PERParams()) -> state
    add: Callable[..., ReplayState]  # (state, s (D,), a (N,), theta_norm_sq ()) -> state
    sample: Callable[..., tuple[jax.Array, jax.Array, jax.Array]]  # (key, state) -> s, a, idx
    set_priorities: Callable[..., ReplayState]  # (state, idx (B,), delta () or (B,)) -> state


def init(capacity: int, state_dim: int, n_ue: int, params: PERParams | None = None) -> ReplayState:
    """Empty buffer with static sizes (Python ints)."""
    params = PERParams() if params is None else params
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    return ReplayState(
        s=jnp.zeros((capacity, state_dim), jnp.float32),
        a=jnp.zeros((capacity, n_ue), jnp.int32),
        theta_norm0=jnp.zeros((capacity,), jnp.float32),
        priority=jnp.zeros((capacity,), jnp.float32),
        inserted=jnp.zeros((capacity,), jnp.int32),
        valid=jnp.zeros((capacity,), bool),
        count=jnp.zeros((), jnp.int32),
        params=params,
    )


def preserved(state: ReplayState, theta_norm_sq: jax.Array) -> jax.Array:
    """(C,) bool: valid slots with 1/rho_max < rho_i < rho_max (eq. 31) under the current norm."""
    rho_max = state.params.rho_max
    rho = jnp.asarray(theta_norm_sq, jnp.float32) / state.theta_norm0
    return state.valid & (rho > 1.0 / rho_max) & (rho < rho_max)


def next_slot(state: ReplayState, theta_norm_sq: jax.Array) -> jax.Array:
    """Slot the next 2p-ER add writes: first free one, else oldest non-preserved, else oldest."""
    big = jnp.iinfo(jnp.int32).max
    first_free = jnp.argmin(state.valid)  # valid is False-first, so argmin finds a free slot
    keep = preserved(state, theta_norm_sq)
    oldest_evictable = jnp.argmin(jnp.where(keep, big, state.inserted))
    oldest = jnp.argmin(state.inserted)
    full_slot = jnp.where(jnp.all(keep), oldest, oldest_evictable)
    return jnp.where(jnp.all(state.valid), full_slot, first_free)


def _write(
    state: ReplayState, slot: jax.Array, s: jax.Array, a: jax.Array, theta_norm_sq, p
) -> ReplayState:
    chex.assert_shape(s, state.s.shape[1:])
    chex.assert_shape(a, state.a.shape[1:])
    return state.replace(
        s=state.s.at[slot].set(s.astype(jnp.float32)),
        a=state.a.at[slot].set(a.astype(jnp.int32)),
        theta_norm0=state.theta_norm0.at[slot].set(jnp.asarray(theta_norm_sq, jnp.float32)),
        priority=state.priority.at[slot].set(p),
        inserted=state.inserted.at[slot].set(state.count),
        valid=state.valid.at[slot].set(True),
        count=state.count + 1,
    )


def add(state: ReplayState, s: jax.Array, a: jax.Array, theta_norm_sq: jax.Array) -> ReplayState:
    """Append (s, a*) collected by a policy with ||theta||^2 = theta_norm_sq (2p-ER rules)."""
    slot = next_slot(state, theta_norm_sq)
    p_max = jnp.max(jnp.where(state.valid, state.priority, -jnp.inf))
    p_new = jnp.where(jnp.any(state.valid), p_max, 1.0)
    return _write(state, slot, s, a, theta_norm_sq, p_new)


def probabilities(state: ReplayState) -> jax.Array:
    """(C,) sampling probabilities P_i of eq. 32 (0 on invalid slots)."""
    w = jnp.where(state.valid, state.priority**state.params.tau, 0.0)
    return w / jnp.sum(w)


def sample(
    key: jax.Array, state: ReplayState, batch: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw `batch` transitions with replacement by eq. 32: s (B, D), a (B, N), idx (B,) int32.

    Inverse CDF: one uniform per draw against the cumulative P_i (invalid slots have width 0,
    so they are never drawn). `jax.random.categorical` would draw a Gumbel number for every
    (draw, slot) pair, B C of them (524,288 for a batch of 128 from 4096 slots) per Adam step.
    """
    w = jnp.where(state.valid, state.priority**state.params.tau, 0.0)
    cdf = jnp.cumsum(w)  # (C,) nondecreasing; flat across invalid slots
    u = jax.random.uniform(key, (batch,), dtype=cdf.dtype) * cdf[-1]
    idx = jnp.searchsorted(cdf, u, side="right")
    # u rounds up to cdf[-1] at most; the last valid slot then (slot 0 in an empty buffer)
    last_valid = jnp.max(jnp.where(state.valid, jnp.arange(w.shape[0]), 0))
    idx = jnp.minimum(idx, last_valid).astype(jnp.int32)
    return state.s[idx], state.a[idx], idx


def set_priorities(state: ReplayState, idx: jax.Array, delta: jax.Array) -> ReplayState:
    """p_i = |delta| + epsilon for the sampled slots idx (B,); delta is () or (B,).

    A slot drawn twice with different deltas keeps the larger priority (deterministic, unlike a
    plain scatter with duplicate indices).
    """
    chex.assert_rank(idx, 1)
    p = jnp.broadcast_to(jnp.abs(jnp.asarray(delta, jnp.float32)), idx.shape)
    p = p + state.params.epsilon
    cleared = state.priority.at[idx].set(-jnp.inf)
    return state.replace(priority=cleared.at[idx].max(p))


def uniform_add(
    state: ReplayState, s: jax.Array, a: jax.Array, theta_norm_sq: jax.Array
) -> ReplayState:
    """Plain FIFO append: overwrite the oldest slot when full; priority stays 1."""
    slot = ring.slot(state.count, state.valid.shape[0])
    return _write(state, slot, s, a, theta_norm_sq, jnp.float32(1.0))


def uniform_sample(
    key: jax.Array, state: ReplayState, batch: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw `batch` transitions uniformly with replacement from the valid slots."""
    idx = ring.uniform_index(key, state.count, state.valid.shape[0], batch)
    return state.s[idx], state.a[idx], idx


def uniform_set_priorities(state: ReplayState, idx: jax.Array, delta: jax.Array) -> ReplayState:
    """No-op: the traditional buffer has no priorities."""
    del idx, delta
    return state


def _check_sizes(**sizes: int) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"replay {name} must be a positive integer, got {v!r}")


def _bind(
    capacity: int, batch: int, state_dim: int, n_ue: int, add_fn, sample_fn, set_fn
) -> ReplayBuffer:
    _check_sizes(capacity=capacity, batch=batch, state_dim=state_dim, n_ue=n_ue)
    return ReplayBuffer(
        init=functools.partial(init, capacity, state_dim, n_ue),
        add=add_fn,
        sample=functools.partial(sample_fn, batch=batch),
        set_priorities=set_fn,
    )


def make_per_buffer(capacity: int, batch: int, state_dim: int, n_ue: int) -> ReplayBuffer:
    """2p-ER buffer with static sizes bound; raises `ConfigError` naming a bad size."""
    return _bind(capacity, batch, state_dim, n_ue, add, sample, set_priorities)


def make_uniform_buffer(capacity: int, batch: int, state_dim: int, n_ue: int) -> ReplayBuffer:
    """Traditional FIFO buffer with uniform sampling, same interface as `make_per_buffer`."""
    return _bind(
        capacity, batch, state_dim, n_ue, uniform_add, uniform_sample, uniform_set_priorities
    )


def replay_from_mapping(m: dict | None) -> tuple[str, PERParams, float | None]:
    """The `replay` config group: its kind, its 2p-ER leaves and its `explore_eps` (None when the
    group does not set it); an unknown key or a non-positive number fails by name."""
    rp = dict(m or {})
    kind = rp.pop("kind", "per")
    if kind not in REPLAY_KINDS:
        raise ConfigError(f"replay.kind must be one of {', '.join(REPLAY_KINDS)}, got {kind!r}")
    explore_eps = rp.pop("explore_eps", None)
    bad = sorted(set(rp) - {"rho_max", "tau", "epsilon"})
    if bad:
        raise ConfigError(f"unknown replay setting {bad[0]!r}")
    for k, v in rp.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise ConfigError(f"replay.{k} must be a positive number, got {v!r}")
    return kind, PERParams(**{k: float(v) for k, v in rp.items()}), explore_eps


def make_buffer(kind: str, capacity: int, batch: int, state_dim: int, n_ue: int) -> ReplayBuffer:
    """Buffer by config name: "per" (2p-ER) or "uniform" (traditional DRL)."""
    if kind == "per":
        return make_per_buffer(capacity, batch, state_dim, n_ue)
    if kind == "uniform":
        return make_uniform_buffer(capacity, batch, state_dim, n_ue)
    raise ConfigError(f"replay must be one of {REPLAY_KINDS}, got {kind!r}")
