"""Baselines: capacity rule, Greedy, Random against NumPy; exact MIQP against exhaustive search."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import hetero
from reference_model import RefModel

from ojrs_jax.search.baselines import (
    all_decisions,
    capacity_rule,
    exhaustive,
    greedy,
    random_decision,
)
from ojrs_jax.system.exact import exact_miqp
from ojrs_jax.system.p2 import batched_latency, latency
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels


def crowded(seed: int):
    """40 UEs, 2 MECs of 8 GHz (cap 8 tasks each), uneven task sizes: the capacity rule binds."""
    scn = hetero(make_scenario(SystemConfig(n_ue=40, n_mec=2, seed=seed)), seed)
    scn = scn.replace(f_mec=jnp.array([8e9, 8.5e9], jnp.float32))
    # round task sizes so ties in F_i occur and exercise the tie-break
    return scn.replace(cycles=jnp.round(scn.cycles / 5e8) * 5e8 + 5e8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_capacity_rule_matches_reference(seed):
    scn = crowded(seed)
    ref = RefModel(scn)
    for k in range(5):
        a = np.asarray(jax.random.randint(jax.random.key(k + 10 * seed), (40,), 0, 3))
        got = np.asarray(capacity_rule(scn, jnp.asarray(a, jnp.int32)))
        np.testing.assert_array_equal(got, ref.capacity_rule(a))
        for j in (1, 2):
            assert np.sum(got == j) <= int(np.floor(float(scn.f_mec[j - 1]) / 1e9))


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_matches_reference(seed):
    for scn in (crowded(seed), make_scenario(SystemConfig(n_mec=5, seed=seed))):
        np.testing.assert_array_equal(np.asarray(greedy(scn)), RefModel(scn).greedy())


def test_random_decision_is_uniform_before_capacity(paper_m2):
    A = jax.vmap(random_decision, (0, None))(jax.random.split(jax.random.key(0), 2000), paper_m2)
    freq = np.bincount(np.asarray(A).ravel(), minlength=3) / A.size
    # 60000 draws, capacity (50 per MEC) never binds at N = 30: each option has p = 1/3
    np.testing.assert_allclose(freq, 1 / 3, atol=5 * np.sqrt(2 / 9 / A.size))


def test_all_decisions_enumerates_every_decision():
    d = np.asarray(all_decisions(4, 2))
    assert d.shape == (81, 4) and len({tuple(r) for r in d}) == 81
    assert d.min() == 0 and d.max() == 2


@pytest.mark.parametrize("n,m,seed", [(5, 1, 0), (6, 2, 1), (7, 2, 2), (8, 2, 3), (5, 3, 4)])
def test_exact_miqp_matches_exhaustive(n, m, seed):
    scn = hetero(make_scenario(SystemConfig(n_ue=n, n_mec=m, seed=seed)), seed)
    H = sample_channels(jax.random.key(seed), scn, 3)
    for h in H:
        a_ex, l_ex = exhaustive(scn, h)
        res = exact_miqp(scn, np.asarray(h))
        assert res.status == "optimal"
        np.testing.assert_allclose(res.latency, float(l_ex), rtol=1e-5)
        np.testing.assert_allclose(res.bound, res.latency, rtol=1e-6)
        # SCIP's decision, re-evaluated by the JAX model, is as good as the enumerated one
        np.testing.assert_allclose(
            float(latency(scn, h, jnp.asarray(res.a))), float(l_ex), rtol=1e-5
        )
        # exhaustive really is the minimum over all decisions
        every = batched_latency(scn, h, all_decisions(n, m))
        assert float(l_ex) <= float(every.min()) * (1 + 1e-6)
        assert float(latency(scn, h, a_ex)) == pytest.approx(float(l_ex), rel=1e-6)


def test_exact_beats_heuristics_at_paper_scale(paper_m2):
    H = sample_channels(jax.random.key(21), paper_m2, 5)
    for e, h in enumerate(H):
        res = exact_miqp(paper_m2, np.asarray(h), warm_start=np.asarray(greedy(paper_m2)))
        assert res.status == "optimal"
        for a in (greedy(paper_m2), random_decision(jax.random.key(e), paper_m2)):
            assert (
                res.latency
                <= RefModel(paper_m2).latency(np.asarray(h, float), np.asarray(a)) + 1e-9
            )
