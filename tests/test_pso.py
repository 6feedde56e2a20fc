"""Discrete PSO (src/ojrs_jax/pso.py): sampling law, never worse than its seed, tiny optimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import exhaustive_optima

from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.search.pso import PSOConfig, PSOParams, _sample, pso, pso_from_mapping
from ojrs_jax.system.p2 import latency
from ojrs_jax.system.scenario import ConfigError, SystemConfig, make_scenario, sample_channels

_pso = jax.jit(pso, static_argnames=("n_particles", "n_iter"))


def test_sampling_follows_softmax():
    """x_i ~ softmax(V_i): empirical frequencies of 40000 draws within 5 sigma."""
    logits = jnp.array([[0.0, 1.0, -2.0], [4.0, -4.0, 0.5], [0.0, 0.0, 0.0]])
    n = 40_000
    u = jax.random.uniform(jax.random.key(0), (n, 3))
    x = np.asarray(_sample(u, jnp.broadcast_to(logits, (n, 3, 3))))
    lg = np.asarray(logits, np.float64)
    p = np.exp(lg) / np.exp(lg).sum(axis=1, keepdims=True)
    freq = np.stack([(x == j).mean(axis=0) for j in range(3)], axis=1)
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12)


@pytest.fixture(scope="module")
def tiny():
    return make_scenario(SystemConfig(n_ue=6, n_mec=2, noise=2e-7, seed=2))


def test_never_worse_than_seed_and_trace(tiny):
    n = 8
    H = sample_channels(jax.random.key(1), tiny, n)
    a0 = jax.jit(jax.vmap(random_decision, in_axes=(0, None)))(
        jax.random.split(jax.random.key(2), n), tiny
    )
    keys = jax.random.split(jax.random.key(3), n)
    improved = 0
    for e in range(n):
        a, cost, trace = _pso(keys[e], tiny, H[e], a0[e], PSOParams(), n_particles=16, n_iter=30)
        c0 = float(latency(tiny, H[e], a0[e]))
        assert float(cost) <= c0
        improved += float(cost) < c0
        np.testing.assert_allclose(float(latency(tiny, H[e], a)), float(cost), rtol=1e-6)
        tr = np.asarray(trace)
        assert tr.shape == (30,) and np.all(np.diff(tr) <= 0) and tr[-1] == float(cost)
    assert improved >= 0.8 * n


def test_tiny_finds_exhaustive_optimum(tiny):
    n = 30
    H = sample_channels(jax.random.key(4), tiny, n)
    keys = jax.random.split(jax.random.key(5), n)
    cost = np.array(
        [
            float(
                _pso(keys[e], tiny, H[e], greedy(tiny), PSOParams(), n_particles=16, n_iter=30)[1]
            )
            for e in range(n)
        ]
    )
    opt = exhaustive_optima(tiny, H[:n])
    hit = cost <= opt * (1 + 1e-6)
    assert hit.mean() >= 0.9, hit.mean()
    assert np.all(cost >= opt * (1 - 1e-6))


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="pso.n_particles"):
        PSOConfig(n_particles=0)
    with pytest.raises(ConfigError, match="pso.v_max"):
        pso_from_mapping({"v_max": -1.0})
    with pytest.raises(ConfigError, match="swarm"):
        pso_from_mapping({"swarm": 3})
    cfg, params = pso_from_mapping({"n_iter": 7, "inertia": 0.9})
    assert cfg == PSOConfig(n_iter=7) and params == PSOParams(inertia=0.9)
