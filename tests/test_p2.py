"""P2: closed form against NumPy and SciPy, jaxopt against the closed form, batching, validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_model import RefModel
from scipy.optimize import minimize

from ojrs_jax.system.p2 import (
    batched_latency,
    costs_latency,
    evaluate,
    feasibility,
    latency,
    option_costs,
    solve_p2,
    solve_p2_closed_form,
    solve_p2_pg,
)
from ojrs_jax.system.scenario import ConfigError, sample_channels


def random_decisions(key, n, m, k):
    return jax.random.randint(key, (k, n), 0, m + 1, dtype=jnp.int32)


def test_latency_and_allocation_match_reference(hetero_scn):
    ref = RefModel(hetero_scn)
    H = sample_channels(jax.random.key(1), hetero_scn, 6)
    A = random_decisions(jax.random.key(2), hetero_scn.n_ue, hetero_scn.n_mec, 6)
    A = A.at[0].set(0).at[1].set(1)  # all local; everyone on MEC 1
    for h, a in zip(H, A, strict=True):
        f, p, t, L = ref.allocation(np.asarray(h, np.float64), np.asarray(a))
        alloc = solve_p2_closed_form(hetero_scn, h, a)
        np.testing.assert_allclose(float(latency(hetero_scn, h, a)), L, rtol=2e-5)
        np.testing.assert_allclose(float(alloc.latency), L, rtol=2e-5)
        np.testing.assert_allclose(np.asarray(alloc.f), f, rtol=2e-5)
        np.testing.assert_allclose(np.asarray(alloc.p), p, rtol=2e-5)
        np.testing.assert_allclose(np.asarray(alloc.per_ue), t, rtol=2e-5)


def slsqp_p2(ref: RefModel, h, a) -> float:
    """P2 solved numerically over (f, p) with SciPy SLSQP from a feasible, non-optimal start.

    Variables are scaled to order one: CPU shares g_i (f_i = g_i F_MEC_j, or g_i F_L locally)
    and power fractions q_i (p_i = q_i P_max) of the offloading UEs.
    """
    n = ref.N
    loc = a == 0
    off = np.nonzero(~loc)[0]
    cap = np.where(loc, ref.f_loc, ref.f_mec[np.maximum(a - 1, 0)])
    g_max_local = min(1.0, (ref.p_max / ref.kappa) ** (1 / 3) / ref.f_loc)  # C3 and C4

    def latency_of(x):
        f, q = x[:n] * cap, x[n:]
        t = ref.F / f
        for k, i in enumerate(off):
            t[i] += ref.D[i] / (ref.B * np.log2(1 + q[k] * ref.p_max * h[i, a[i] - 1] / ref.noise))
        return float(np.sum(ref.w * t))

    cons = []
    for j in range(1, ref.M + 1):
        on = a == j
        if on.any():
            cons.append({"type": "ineq", "fun": lambda x, on=on: 1.0 - x[:n][on].sum()})
    bounds = [(1e-4, g_max_local if loc[i] else 1.0) for i in range(n)] + [(1e-3, 1.0)] * len(off)
    x0 = np.concatenate([np.full(n, 0.5), np.full(len(off), 0.5)])
    for j in range(1, ref.M + 1):  # a feasible, unequal start on every MEC
        on = np.nonzero(a == j)[0]
        x0[on] = np.linspace(0.5, 1.5, len(on)) / (2 * len(on))
    scale = latency_of(x0)
    res = minimize(
        lambda x: latency_of(x) / scale,
        x0,
        method="SLSQP",
        bounds=bounds,
        constraints=cons,
        options={"maxiter": 2000, "ftol": 1e-14},
    )
    assert res.success, res.message
    return res.fun * scale


def test_closed_form_is_optimal_against_slsqp(hetero_scn):
    """The closed form is the optimum of P2: SLSQP over (f, p) reaches it and never beats it."""
    ref = RefModel(hetero_scn)
    H = sample_channels(jax.random.key(5), hetero_scn, 3)
    A = random_decisions(jax.random.key(6), hetero_scn.n_ue, hetero_scn.n_mec, 3)
    for h, a in zip(H, A, strict=True):
        h64, a_np = np.asarray(h, np.float64), np.asarray(a)
        closed = ref.latency(h64, a_np)
        num = slsqp_p2(ref, h64, a_np)
        assert num >= closed * (1 - 1e-6)
        np.testing.assert_allclose(num, closed, rtol=1e-4)


def test_jaxopt_solver_agrees_with_closed_form(hetero_scn):
    H = sample_channels(jax.random.key(8), hetero_scn, 32)
    A = random_decisions(jax.random.key(9), hetero_scn.n_ue, hetero_scn.n_mec, 32)
    cf = jax.vmap(solve_p2_closed_form, (None, 0, 0))(hetero_scn, H, A)
    pg, iters = jax.jit(jax.vmap(solve_p2_pg, (None, 0, 0)))(hetero_scn, H, A)
    np.testing.assert_allclose(np.asarray(pg.latency), np.asarray(cf.latency), rtol=1e-4)
    iters = np.asarray(iters)
    print(
        f"\njaxopt ProjectedGradient iterations at M={hetero_scn.n_mec}: median "
        f"{np.median(iters):.0f}, max {iters.max()}"
    )
    # the numerical allocation is feasible too
    for k in range(4):
        alloc_k = jax.tree.map(lambda x, k=k: x[k], pg)
        assert all(feasibility(hetero_scn, np.asarray(A[k]), alloc_k).values())


def test_config_switch_selects_solver(paper_m2, channels_m2):
    a = jnp.array([0, 1, 2] * 10, jnp.int32)
    h = channels_m2[0]
    assert float(solve_p2(paper_m2, h, a, "jaxopt").latency) == pytest.approx(
        float(solve_p2(paper_m2, h, a, "closed_form").latency), rel=1e-4
    )
    with pytest.raises(ConfigError, match="p2 method"):
        solve_p2(paper_m2, h, a, "newton")


def test_allocation_satisfies_constraints(hetero_scn):
    H = sample_channels(jax.random.key(11), hetero_scn, 8)
    A = random_decisions(jax.random.key(12), hetero_scn.n_ue, hetero_scn.n_mec, 8)
    for h, a in zip(H, A, strict=True):
        checks = feasibility(hetero_scn, np.asarray(a), solve_p2_closed_form(hetero_scn, h, a))
        assert all(checks.values()), checks
    # an over-full MEC allocation is caught
    alloc = solve_p2_closed_form(hetero_scn, H[0], A[0])
    bad = alloc._replace(f=alloc.f * 2.0)
    assert not feasibility(hetero_scn, np.asarray(A[0]), bad)["C5_mec_cpu"] or not np.any(A[0] > 0)


def test_option_costs_latency_matches_reference(hetero_scn):
    """L(a) from the per-option table (what ASA evaluates) equals the float64 reference."""
    ref = RefModel(hetero_scn)
    H = sample_channels(jax.random.key(5), hetero_scn, 4)
    A = random_decisions(jax.random.key(6), hetero_scn.n_ue, hetero_scn.n_mec, 16)
    A = A.at[0].set(0).at[1].set(hetero_scn.n_mec)  # all local; everyone on the last MEC
    for h in H:
        got = np.asarray(costs_latency(option_costs(hetero_scn, h), A))
        want = [ref.allocation(np.asarray(h, np.float64), np.asarray(a))[3] for a in A]
        np.testing.assert_allclose(got, want, rtol=2e-5)


def test_batched_equals_looped(paper_m2, channels_m2):
    A = random_decisions(jax.random.key(3), 30, 2, channels_m2.shape[0])
    looped = np.array([float(latency(paper_m2, h, a)) for h, a in zip(channels_m2, A, strict=True)])
    np.testing.assert_allclose(
        np.asarray(batched_latency(paper_m2, channels_m2, A)), looped, rtol=1e-6
    )
    # one channel, many decisions
    one = np.array([float(latency(paper_m2, channels_m2[0], a)) for a in A])
    np.testing.assert_allclose(
        np.asarray(batched_latency(paper_m2, channels_m2[0], A)), one, rtol=1e-6
    )


def test_no_recompilation_for_new_numbers(paper_m2, channels_m2):
    traces = []

    @jax.jit
    def f(scn, h, a):
        traces.append(1)
        return latency(scn, h, a)

    a = jnp.ones(30, jnp.int32)
    f(paper_m2, channels_m2[0], a)
    # new channel, decision and physical constants (pytree leaves) reuse the compiled code
    f(paper_m2.replace(noise=paper_m2.noise * 2, p_max=paper_m2.p_max / 2), channels_m2[1], a * 2)
    assert len(traces) == 1


def test_evaluate_validates_decisions(paper_m2, channels_m2):
    h = np.asarray(channels_m2[0])
    with pytest.raises(ConfigError, match=r"option 3 outside 0\.\.M=2"):
        evaluate(paper_m2, h, np.full(30, 3))
    with pytest.raises(ConfigError, match="outside"):
        evaluate(paper_m2, h, np.full(30, -1))
    with pytest.raises(ConfigError, match="last dimension N=30"):
        evaluate(paper_m2, h, np.zeros(29, int))
    with pytest.raises(ConfigError, match="integers"):
        evaluate(paper_m2, h, np.full(30, 0.5))
    with pytest.raises(ConfigError, match="finite and positive"):
        evaluate(paper_m2, -h, np.zeros(30, int))
    ok = evaluate(paper_m2, h, np.ones(30, int))
    np.testing.assert_allclose(
        float(ok.latency), RefModel(paper_m2).latency(h.astype(float), np.ones(30, int)), rtol=2e-5
    )
