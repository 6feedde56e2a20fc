"""Property tests (hypothesis) over random valid scenarios and decisions.

A scenario has N in 1..12 UEs and M in 1..5 MECs at random positions, with task sizes, cycles,
weights, MEC and UE speeds, power, bandwidth and noise each drawn log-uniformly over several
decades, and channel gains whose SNR p h / sigma2 spans 1e-9 .. 1e9. Checked: P2's allocation
meets C1-C5, L is finite and positive and equals the allocation's latency; L is invariant to
permuting the UEs; the certified optimum (SCIP) is <= Greedy, Random and ASA and equals
exhaustive search where that is small; jaxopt's P2 solver agrees with the closed form.
"""

from __future__ import annotations

from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ojrs_jax.search.asa import ASAParams, asa_search
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.exact import exact_miqp, latency_np
from ojrs_jax.system.p2 import feasibility, latency, solve_p2_closed_form, solve_p2_pg
from ojrs_jax.system.scenario import Scenario

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size=None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


@st.composite
def cases(draw, max_n: int = 12, max_m: int = 5):
    """(scenario, channel h (N, M), decision a (N,), numpy generator) of random valid sizes."""
    n = draw(st.integers(1, max_n), label="N")
    m = draw(st.integers(1, max_m), label="M")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    area = log_uniform(rng, 10.0, 1000.0)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    scn = Scenario(
        ue_pos=f32(rng.uniform(0, area, (n, 2))),
        mec_pos=f32(rng.uniform(0, area, (m, 2))),
        data_bits=f32(log_uniform(rng, 1e3, 1e8, n)),
        cycles=f32(log_uniform(rng, 1e6, 1e11, n)),
        weights=f32(log_uniform(rng, 1e-2, 1e2, n)),
        f_mec=f32(log_uniform(rng, 1e8, 1e12, m)),
        bandwidth=f32(log_uniform(rng, 1e4, 1e8)),
        p_max=f32(log_uniform(rng, 1e-3, 10.0)),
        beta0=f32(log_uniform(rng, 1e-5, 1e-2)),
        noise=f32(log_uniform(rng, 1e-13, 1e-5)),
        kappa=f32(log_uniform(rng, 1e-29, 1e-25)),
        f_local=f32(log_uniform(rng, 1e7, 1e10)),
    )
    snr = log_uniform(rng, 1e-9, 1e9, (n, m))
    h = f32(snr * float(scn.noise) / float(scn.p_max))
    a = jnp.asarray(rng.integers(0, m + 1, n), jnp.int32)
    return scn, h, a, rng


# One compilation per (N, M), shared by the tests below; the checks run on the host.
p2_closed_form = jax.jit(lambda scn, h, a: (solve_p2_closed_form(scn, h, a), latency(scn, h, a)))


@jax.jit
def heuristics(key, scn, h):
    a_g = greedy(scn)
    a_asa = asa_search(key, scn, h, a_g, 8, ASAParams(), k=16, max_iter=8)[0]
    return {"greedy": a_g, "random": random_decision(key, scn), "asa": a_asa}


@settings(max_examples=100, **SETTINGS)
@given(cases())
def test_p2_allocation_feasible_and_latency_finite(case):
    scn, h, a, _ = case
    alloc, lat = p2_closed_form(scn, h, a)
    assert all(feasibility(scn, a, alloc).values()), feasibility(scn, a, alloc)
    lat = float(lat)
    assert np.isfinite(lat) and lat > 0
    assert np.all(np.isfinite(np.asarray(alloc.per_ue))) and np.all(np.asarray(alloc.per_ue) > 0)
    np.testing.assert_allclose(float(alloc.latency), lat, rtol=1e-5)
    # the float32 JAX value against the float64 cost data of the MIQP
    np.testing.assert_allclose(lat, latency_np(scn, np.asarray(h), np.asarray(a)), rtol=1e-4)


@settings(max_examples=100, **SETTINGS)
@given(cases())
def test_latency_invariant_to_permuting_ues(case):
    scn, h, a, rng = case
    perm = rng.permutation(scn.n_ue)
    scn_p = scn.replace(
        ue_pos=scn.ue_pos[perm],
        data_bits=scn.data_bits[perm],
        cycles=scn.cycles[perm],
        weights=scn.weights[perm],
    )
    alloc, lat = p2_closed_form(scn, h, a)
    alloc_p, lat_p = p2_closed_form(scn_p, h[perm], a[perm])
    np.testing.assert_allclose(float(lat_p), float(lat), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(alloc_p.f), np.asarray(alloc.f)[perm], rtol=1e-5)


# Each new (N, M) compiles ASA (about 1 s), so this test draws fewer examples.
@settings(max_examples=15, **SETTINGS)
@given(cases(max_n=10))
def test_exact_beats_every_heuristic(case):
    scn, h, _, rng = case
    h64 = np.asarray(h, np.float64)
    ex = exact_miqp(scn, h64, time_limit=30.0)  # no warm start: SCIP finds it alone
    assert ex.status == "optimal"
    decisions = heuristics(jax.random.key(int(rng.integers(2**31))), scn, h)
    for name, a in decisions.items():
        l_h = latency_np(scn, h64, np.asarray(a))
        assert ex.latency <= l_h * (1 + 1e-6), (name, ex.latency, l_h)
    n, m = scn.n_ue, scn.n_mec
    if (m + 1) ** n <= 4096:
        best = min(latency_np(scn, h64, np.array(a)) for a in product(range(m + 1), repeat=n))
        np.testing.assert_allclose(ex.latency, best, rtol=1e-6)


# jaxopt compiles its solver loop per (N, M) and may run its 1000 iterations: fewer examples.
@settings(max_examples=12, **SETTINGS)
@given(cases(max_n=10))
def test_jaxopt_agrees_with_closed_form(case):
    scn, h, a, _ = case
    exact, _ = p2_closed_form(scn, h, a)
    pg, _ = solve_p2_pg(scn, h, a)
    assert all(feasibility(scn, a, pg).values()), feasibility(scn, a, pg)
    np.testing.assert_allclose(float(pg.latency), float(exact.latency), rtol=1e-4)
