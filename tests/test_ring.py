"""The one FIFO ring buffer (SAE memory and uniform replay) against a deque reference."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ojrs_jax.agent import replay
from ojrs_jax.core import ring


def _stored(r: ring.Ring) -> tuple[np.ndarray, np.ndarray]:
    """Stored rows of both leaves, oldest first."""
    cap, n = ring.capacity(r), int(r.count)
    order = np.arange(n) if n < cap else (np.arange(cap) + n) % cap
    return np.asarray(r.data["x"])[order], np.asarray(r.data["y"])[order]


def test_push_matches_a_bounded_deque_with_rejections():
    cap, rng = 4, np.random.default_rng(1)
    r = ring.init({"x": jnp.zeros((cap, 3)), "y": jnp.zeros((cap,), jnp.int32)})
    ref: deque = deque(maxlen=cap)
    push = jax.jit(ring.push)
    for t in range(15):
        x, y, ok = rng.normal(size=3).astype(np.float32), t, bool(rng.uniform() < 0.7)
        r = push(r, {"x": x, "y": y}, ok)
        if ok:
            ref.append((x, y))
        xs, ys = _stored(r)
        assert int(ring.rows(r)) == len(ref)
        np.testing.assert_array_equal(ys, [e[1] for e in ref])
        np.testing.assert_array_equal(
            xs.reshape(-1, 3), np.array([e[0] for e in ref]).reshape(-1, 3)
        )
    assert int(ring.rows(r)) == cap and int(r.count) > cap  # it wrapped around


def test_sample_draws_only_stored_rows_and_covers_them():
    r = ring.init({"x": jnp.zeros((8, 1)), "y": jnp.zeros((8,), jnp.int32)})
    for t in range(3):
        r = ring.push(r, {"x": jnp.full((1,), t + 1.0), "y": t + 1})
    got = np.asarray(ring.sample(jax.random.key(0), r, 400)["y"])
    assert set(got.tolist()) == {1, 2, 3}  # never an empty slot (0), every stored row
    empty = ring.init({"x": jnp.zeros((8, 1)), "y": jnp.zeros((8,), jnp.int32)})
    assert set(np.asarray(ring.sample(jax.random.key(0), empty, 10)["y"]).tolist()) == {0}


def test_uniform_replay_uses_the_ring_slots():
    buf = replay.make_uniform_buffer(3, 16, 2, 1)
    st = buf.init()
    for t in range(5):
        st = buf.add(st, jnp.full((2,), float(t)), jnp.array([t]), 1.0)
    # slots hold the 3 newest states; slot t % 3 holds add t
    np.testing.assert_array_equal(np.asarray(st.s)[:, 0], [3.0, 4.0, 2.0])
    _, a, idx = buf.sample(jax.random.key(1), st)
    assert set(np.asarray(a)[:, 0].tolist()) <= {2, 3, 4}


def test_init_rejects_mismatched_or_empty_capacity():
    with pytest.raises(ValueError, match="leading capacity"):
        ring.init({"x": jnp.zeros((3, 1)), "y": jnp.zeros((4,))})
    with pytest.raises(ValueError, match="leading capacity"):
        ring.init(jnp.zeros((0, 2)))
