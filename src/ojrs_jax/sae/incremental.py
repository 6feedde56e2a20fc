"""Incremental learning of the 2r-SAE (paper Algorithm 1, lines 3-4 and 11; Sec. IV.B).

A FIFO memory of fixed size takes a new x only when its reconstruction error (MSE in the x
domain) exceeds `error_threshold`; every step trains the SAE for `retrain_steps` Adam steps on
memory samples, and every `sync_period` steps copies theta_SAE to the online encoder, which
produces the DRL state. `retrain_learning_rate` (0: `learning_rate`) sets its Adam step size:
after training to the plateau, where the step size was cut, the full step size moves the code
the policy reads at every sync. Each step is a pure function, callable inside `lax.scan`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from ojrs_jax.core import ring
from ojrs_jax.sae.channel_map import ChannelStats
from ojrs_jax.sae.model import Params, SAEConfig, encode, reconstruct
from ojrs_jax.sae.train import adam_step, optimizer, scale_learning_rate

Memory = ring.Ring  # FIFO of preprocessed channels x (C, D), one `ring.Ring`


def memory_init(capacity: int, dim: int) -> Memory:
    """An empty memory of `capacity` rows of width `dim` (both Python ints)."""
    if capacity <= 0 or dim <= 0:
        raise ValueError(f"memory capacity and dim must be positive, got {capacity}, {dim}")
    return ring.init(jnp.zeros((capacity, dim), jnp.float32))


def memory_add(
    mem: Memory, x: jax.Array, err: jax.Array, threshold: float | jax.Array
) -> tuple[Memory, jax.Array]:
    """Error check then FIFO insert: x (D,) enters (overwriting the oldest when full) iff err >
    threshold. Returns the new memory and whether x entered."""
    chex.assert_shape(x, mem.data.shape[1:])
    add = err > threshold
    return ring.push(mem, x, add), add


def memory_add_batch(
    mem: Memory, xs: jax.Array, errs: jax.Array, threshold: float | jax.Array
) -> tuple[Memory, jax.Array]:
    """`memory_add` for rows xs (E, D) with errors errs (E,), in order; returns added (E,)."""

    def body(m, xe):
        return memory_add(m, xe[0], xe[1], threshold)

    return jax.lax.scan(body, mem, (xs, errs))


def memory_sample(key: jax.Array, mem: Memory, batch: int) -> jax.Array:
    """Uniform rows (batch, D) from the valid part of the memory (row 0 repeats while empty)."""
    return ring.sample(key, mem, batch)


def reconstruction_error(params: Params, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """Error check value: MSE of the reconstruction in the x domain, per input (...,)."""
    return jnp.mean(jnp.square(x - reconstruct(params, cfg, x)), axis=-1)


@struct.dataclass
class IncrementalState:
    """The SAE under incremental learning, its memory and the online encoder it feeds."""

    params: Params  # theta_SAE, trained on the memory
    opt_state: optax.OptState  # Adam moments of theta_SAE
    online: Params  # online encoder's copy of theta_SAE (synchronised every sync_period)
    memory: Memory  # FIFO of inputs whose error exceeded the threshold
    step: chex.Array  # () int32 incremental steps taken


def incremental_init(cfg: SAEConfig, params: Params, n_in: int) -> IncrementalState:
    """Start incremental learning from (pre-trained or fresh) parameters, empty memory."""
    opt_state = optimizer(cfg).init(params)
    if cfg.retrain_learning_rate:
        opt_state = scale_learning_rate(opt_state, cfg.retrain_learning_rate / cfg.learning_rate)
    return IncrementalState(
        params=params,
        opt_state=opt_state,
        online=params,
        memory=memory_init(cfg.memory_size, n_in),
        step=jnp.zeros((), jnp.int32),
    )


def incremental_step(
    key: jax.Array, state: IncrementalState, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> tuple[IncrementalState, dict[str, jax.Array]]:
    """One online epoch for a new input x (N*M,): error check, FIFO add, retrain, periodic sync.

    Retraining takes `cfg.retrain_steps` Adam steps on memory minibatches (skipped while the
    memory is empty); the online encoder receives theta_SAE when the step count reaches a
    multiple of `cfg.sync_period`. Callable inside `lax.scan`.
    """
    chex.assert_shape(x, state.memory.data.shape[1:])
    err = reconstruction_error(state.params, cfg, x)
    memory, added = memory_add(state.memory, x, err, cfg.error_threshold)

    def train(carry, k):
        params, opt_state = carry
        batch = memory_sample(k, memory, cfg.batch_size)
        new_p, new_o, out = adam_step(params, opt_state, cfg, batch, stats)
        keep = ring.rows(memory) > 0
        params, opt_state = jax.tree.map(
            lambda a, b: jnp.where(keep, a, b), (new_p, new_o), (params, opt_state)
        )
        return (params, opt_state), out["loss"]

    (params, opt_state), losses = jax.lax.scan(
        train, (state.params, state.opt_state), jax.random.split(key, cfg.retrain_steps)
    )
    step = state.step + 1
    sync = step % cfg.sync_period == 0
    online = jax.tree.map(lambda p, o: jnp.where(sync, p, o), params, state.online)
    new = IncrementalState(
        params=params, opt_state=opt_state, online=online, memory=memory, step=step
    )
    return new, {"err": err, "added": added, "loss": losses[-1], "synced": sync}


def online_encode(state: IncrementalState, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """DRL state s (..., latent) from the online encoder."""
    return encode(state.online, cfg, x)
