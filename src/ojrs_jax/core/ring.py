"""Fixed-capacity FIFO ring buffer: the SAE's memory (Algorithm 1) and the traditional replay.

One implementation of "append, overwrite the oldest when full, sample uniformly from what is
stored". A `Ring` holds any pytree whose leaves share a leading capacity axis C and counts the
items ever accepted; the next slot is `count % C` and the stored part is `min(count, C)` rows,
filled from slot 0 on. The incremental-learning memory of the 2r-SAE is a `Ring` of inputs x;
the uniform replay buffer (`replay.uniform_add`, the traditional DRL of Sec. V.C) uses the same
`slot`, `size` and `uniform_index` on its own counter. Pure functions, callable inside `lax.scan`.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct


def slot(count: jax.Array, capacity: int) -> jax.Array:
    """Slot of the next item after `count` accepted items: the oldest one once full."""
    return count % capacity


def size(count: jax.Array, capacity: int) -> jax.Array:
    """Rows holding an item after `count` accepted items (slots 0 .. size - 1)."""
    return jnp.minimum(count, capacity)


def uniform_index(key: jax.Array, count: jax.Array, capacity: int, batch: int) -> jax.Array:
    """`batch` slots drawn uniformly with replacement from the stored ones (int32; slot 0
    repeats while the ring is empty)."""
    n = jnp.maximum(size(count, capacity), 1)
    return jax.random.randint(key, (batch,), 0, n, dtype=jnp.int32)


@struct.dataclass
class Ring:
    """Items in a pytree with leading axis C, and how many were ever accepted."""

    data: Any  # pytree of (C, ...) arrays; rows >= size(count) are unused
    count: chex.Array  # () int32 items accepted so far


def capacity(ring: Ring) -> int:
    """C, the number of slots (static)."""
    return jax.tree.leaves(ring.data)[0].shape[0]


def init(data: Any) -> Ring:
    """An empty ring over `data` (zeros of the wanted shapes, leading axis C >= 1)."""
    c = {x.shape[0] for x in jax.tree.leaves(data)}
    if len(c) != 1 or min(c) <= 0:
        raise ValueError(f"ring leaves need one positive leading capacity, got {sorted(c)}")
    return Ring(data=data, count=jnp.zeros((), jnp.int32))


def push(ring: Ring, item: Any, accept: jax.Array | bool = True) -> Ring:
    """Write `item` (the pytree of one row) at the next slot if `accept`; else keep the ring."""
    s = slot(ring.count, capacity(ring))
    data = jax.tree.map(
        lambda d, x: d.at[s].set(jnp.where(accept, jnp.asarray(x, d.dtype), d[s])), ring.data, item
    )
    return Ring(data=data, count=ring.count + jnp.asarray(accept, jnp.int32))


def rows(ring: Ring) -> jax.Array:
    """Rows holding an item (the `size` of the ring)."""
    return size(ring.count, capacity(ring))


def sample(key: jax.Array, ring: Ring, batch: int) -> Any:
    """`batch` stored items drawn uniformly with replacement (pytree of (batch, ...) arrays)."""
    idx = uniform_index(key, ring.count, capacity(ring), batch)
    return jax.tree.map(lambda d: d[idx], ring.data)
