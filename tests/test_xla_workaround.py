"""Regression test for the jaxlib 0.10.2 CPU miscompile that `ojrs_jax/__init__` works around."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

import ojrs_jax  # noqa: F401  (sets XLA_FLAGS before the backend starts)
from ojrs_jax.search.baselines import exhaustive
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels


def test_flag_is_set():
    assert "--xla_cpu_experimental_ynn_fusion_type=" in os.environ.get("XLA_FLAGS", "")


def test_jit_vmap_of_selected_sums_is_correct():
    """Sums over one-hot selections, batched twice, must equal the eager (un-jitted) result."""
    rng = np.random.default_rng(0)
    H = jnp.asarray(rng.uniform(1, 2, (10, 6, 2)), jnp.float32)
    A = jnp.asarray(rng.integers(0, 3, (729, 6)), jnp.int32)

    def g(h, a):
        return jnp.sum((a[:, None] == jnp.arange(1, 3)) * h, axis=1) + (a == 0)

    def f(h):
        return jax.vmap(g, (None, 0))(h, A)

    np.testing.assert_allclose(
        np.asarray(jax.jit(jax.vmap(f))(H)), np.asarray(jax.vmap(f)(H)), rtol=1e-6
    )


def test_vmapped_exhaustive_matches_loop():
    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2, seed=1))
    H = sample_channels(jax.random.key(0), scn, 10)
    batched = np.asarray(jax.jit(jax.vmap(lambda h: exhaustive(scn, h)[1]))(H))
    looped = np.array([float(exhaustive(scn, h)[1]) for h in H])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
