"""`asa.best_response` (a deterministic polish of a decision) against a NumPy reference that
re-evaluates the whole closed-form L (reference_asa.latency_ref) for every single-UE move."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import hetero
from reference_asa import latency_ref, scenario_np

from ojrs_jax.search.asa import best_response
from ojrs_jax.system.p2 import option_costs
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels


def best_response_ref(s: dict, h: np.ndarray, a0: np.ndarray, sweeps: int) -> np.ndarray:
    """UE 0..N-1 in turn takes the option with the lowest L given the others (by evaluating L
    for each of its M + 1 options), only if strictly lower than its current L."""
    a = np.array(a0)
    for _ in range(sweeps):
        for i in range(a.size):
            costs = []
            for j in range(h.shape[1] + 1):
                b = a.copy()
                b[i] = j
                costs.append(latency_ref(s, h, b))
            j = int(np.argmin(costs))
            if costs[j] < costs[a[i]] * (1 - 1e-6):  # float32 ties are left to either side
                a[i] = j
    return a


@pytest.mark.parametrize("m", [1, 3, 5])
def test_one_pass_equals_the_reference_and_never_worsens(m):
    scn = hetero(make_scenario(SystemConfig(n_ue=12, n_mec=m, seed=m)), seed=m)
    s = scenario_np(scn)
    H = np.asarray(sample_channels(jax.random.key(m), scn, 6), np.float64)
    rng = np.random.default_rng(m)
    fn = jax.jit(lambda h, a: best_response(option_costs(scn, h), a, 1))
    moved = 0
    for h in H:
        a0 = rng.integers(0, m + 1, scn.n_ue)
        got = np.asarray(fn(jnp.asarray(h, jnp.float32), jnp.asarray(a0)))
        want = best_response_ref(s, h, a0, 1)
        np.testing.assert_array_equal(got, want)
        assert latency_ref(s, h, got) <= latency_ref(s, h, a0)
        moved += int(np.sum(got != a0))
    assert moved > 0  # random starts are improved


def test_passes_reach_a_point_no_single_move_improves():
    scn = hetero(make_scenario(SystemConfig(n_ue=15, n_mec=4, seed=9)), seed=9)
    s = scenario_np(scn)
    h = np.asarray(sample_channels(jax.random.key(9), scn, 1)[0], np.float64)
    a0 = np.zeros(scn.n_ue, np.int64)
    got = np.asarray(
        best_response(option_costs(scn, jnp.asarray(h, jnp.float32)), jnp.asarray(a0), 30)
    )
    base = latency_ref(s, h, got)
    for i in range(scn.n_ue):
        for j in range(scn.n_mec + 1):
            b = got.copy()
            b[i] = j
            assert latency_ref(s, h, b) >= base * (1 - 1e-6)
    assert latency_ref(s, h, got) < latency_ref(s, h, a0)
