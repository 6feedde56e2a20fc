"""ASA and plain SA (src/ojrs_jax/asa.py): NumPy reference, h-mutation statistics, guarantees."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import exhaustive_optima
from reference_asa import (
    iteration_ref,
    latency_ref,
    mutation_rate_ref,
    option_probs_ref,
    scenario_np,
    transition_ref,
)

from ojrs_jax.search.asa import (
    ASAConfig,
    ASAParams,
    ASAState,
    Draws,
    adapt_t_sa,
    asa_from_mapping,
    asa_init,
    asa_iteration,
    asa_search,
    iteration_draws,
    mutation_matrix,
    neighbours,
    option_probs,
    plain_sa,
    sample_draws,
    stream_seeds,
)
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.p2 import batched_latency, latency
from ojrs_jax.system.scenario import ConfigError, SystemConfig, make_scenario, sample_channels

K, MAX_ITER = 32, 30


@pytest.fixture(scope="module")
def scn3():
    return make_scenario(SystemConfig(n_ue=12, n_mec=3, noise=2e-7, seed=5))


@pytest.fixture(scope="module")
def tiny():
    return make_scenario(SystemConfig(n_ue=6, n_mec=2, noise=2e-7, seed=2))


_search = jax.jit(asa_search, static_argnames=("k", "max_iter"))


@functools.partial(jax.jit, static_argnames=("k", "max_iter"))
def _search_b(keys, scn, H, a0, n_iter, params, *, k, max_iter):
    """asa_search vmapped over instances (key, h, a0, n_iter)."""
    one = functools.partial(asa_search, k=k, max_iter=max_iter)
    return jax.vmap(one, in_axes=(0, None, 0, 0, 0, None))(keys, scn, H, a0, n_iter, params)


def test_option_probs_match_reference(scn3):
    h = sample_channels(jax.random.key(1), scn3, 1)[0]
    for lw in (1.0, 0.3):
        q = np.asarray(option_probs(h, lw), np.float64)
        np.testing.assert_allclose(q, option_probs_ref(np.asarray(h, np.float64), lw), rtol=1e-5)
        np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-6)
    # Neutral local value: with lw = 1 the local option weighs like an average MEC, 1 / (M + 1).
    np.testing.assert_allclose(np.asarray(option_probs(h, 1.0))[:, 0], 1 / 4, rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_h_mutation_frequencies(scn3, scale):
    """Empirical neighbour options of 40000 draws against the intended P(a'_i = j)."""
    h = sample_channels(jax.random.key(2), scn3, 1)[0]
    a = jnp.asarray(np.arange(scn3.n_ue) % (scn3.n_mec + 1), jnp.int32)
    params = ASAParams(mut_scale=scale)
    q = option_probs(h, params.local_weight)
    from ojrs_jax.search.asa import mutation_rates

    draws = sample_draws(jax.random.key(3), 40_000, scn3.n_ue)
    nb = np.asarray(neighbours(draws, q, a, mutation_rates(q, a, scale)))
    n = nb.shape[0]
    freq = np.stack([(nb == j).mean(axis=0) for j in range(scn3.n_mec + 1)], axis=1)  # (N, M+1)
    h64, a64 = np.asarray(h, np.float64), np.asarray(a)
    q_ref = option_probs_ref(h64, 1.0)
    p_ref = transition_ref(q_ref, a64, mutation_rate_ref(q_ref, a64, scale))
    np.testing.assert_allclose(np.asarray(mutation_matrix(h, a, params)), p_ref, atol=1e-6)
    # Keep probability is exactly 1 - m_i = 1 - c (1 - q_{i,a_i}) (the paper's P_i^mut at c = 1).
    keep = p_ref[np.arange(scn3.n_ue), a64]
    np.testing.assert_allclose(keep, 1 - np.minimum(1, scale * (1 - q_ref[np.arange(12), a64])))
    sigma = np.sqrt(p_ref * (1 - p_ref) / n)
    assert np.all(np.abs(freq - p_ref) <= 5 * sigma + 1e-12), np.max(np.abs(freq - p_ref) / sigma)


@pytest.mark.parametrize("guided", [True, False])
def test_iterations_match_numpy_reference(scn3, guided):
    """Six iterations, hot and cold, JAX and the float64 reference fed the same uniforms."""
    s = scenario_np(scn3)
    h = sample_channels(jax.random.key(4), scn3, 1)[0]
    h64 = np.asarray(h, np.float64)
    infos = []
    for t0, seed in ((0.5, 0), (1e-4, 1)):  # hot: uphill moves get accepted; cold: rejected
        params = ASAParams(t0=t0, phi_c=0.8, mut_scale=0.4)
        pdict = {"local_weight": 1.0, "mut_scale": 0.4, "phi_c": 0.8}
        a0 = random_decision(jax.random.key(10 + seed), scn3)
        # start near a local optimum, where the best neighbour is often uphill: the hot run
        # accepts such moves, the cold one rejects them
        a0 = _search(
            jax.random.key(10 + seed), scn3, h, a0, MAX_ITER, ASAParams(), k=K, max_iter=MAX_ITER
        )[0]
        state = asa_init(scn3, h, a0, params)
        c0 = latency_ref(s, h64, np.asarray(a0))
        ref = {
            "a": np.asarray(a0),
            "cost": c0,
            "a_best": np.asarray(a0),
            "cost_best": c0,
            "temp": t0 * c0,
        }
        step = jax.jit(asa_iteration, static_argnames="guided")
        key = jax.random.key(20 + seed)
        for _ in range(6):
            key, sub = jax.random.split(key)
            d = sample_draws(sub, 8, scn3.n_ue)
            state = step(d, state, scn3, h, params, guided=guided)
            ref, info = iteration_ref(
                s, h64, ref, np.asarray(d.u, np.float64), float(d.u_acc), pdict, guided
            )
            infos.append(info)
            np.testing.assert_array_equal(np.asarray(state.a), ref["a"])
            np.testing.assert_array_equal(np.asarray(state.a_best), ref["a_best"])
            np.testing.assert_allclose(float(state.cost), ref["cost"], rtol=2e-6)
            np.testing.assert_allclose(float(state.cost_best), ref["cost_best"], rtol=2e-6)
            np.testing.assert_allclose(float(state.temp), ref["temp"], rtol=2e-6)
    assert any(i["uphill_accepted"] for i in infos) and any(i["rejected"] for i in infos)


N_BATCH = 24


@pytest.fixture(scope="module")
def batch(scn3):
    """24 instances: channels, starts (greedy and random), T_SA from 1 to 24."""
    H = sample_channels(jax.random.key(5), scn3, N_BATCH)
    keys = jax.random.split(jax.random.key(6), N_BATCH)
    starts = jax.jit(jax.vmap(random_decision, in_axes=(0, None)))(keys, scn3)
    starts = starts.at[::2].set(greedy(scn3))
    n_iter = jnp.arange(N_BATCH, dtype=jnp.int32) % MAX_ITER + 1
    return H, starts, n_iter, jax.random.split(jax.random.key(7), N_BATCH)


def test_never_worse_than_start_and_trace(scn3, batch):
    """From random and greedy starts, hot and cold, L(a_best) <= L(a0) and the trace is sane."""
    H, starts, n_iter, keys = batch
    for t0 in (0.5, 1e-4):
        a, cost, trace = _search_b(
            keys, scn3, H, starts, n_iter, ASAParams(t0=t0), k=K, max_iter=MAX_ITER
        )
        c0 = batched_latency(scn3, H, starts)
        assert np.all(np.asarray(cost) <= np.asarray(c0))
        np.testing.assert_allclose(np.asarray(batched_latency(scn3, H, a)), cost, rtol=1e-6)
        tr = np.asarray(trace)
        assert np.all(np.diff(tr, axis=1) <= 0)
        np.testing.assert_array_equal(tr[:, -1], np.asarray(cost))
        for b in range(N_BATCH):  # after n_iter the trace holds the final best
            assert np.all(tr[b, int(n_iter[b]) - 1 :] == tr[b, -1])
        assert np.mean(np.asarray(cost) < np.asarray(c0)) > 0.8  # it does search


def test_zero_iterations_return_start(scn3):
    h = sample_channels(jax.random.key(8), scn3, 1)[0]
    a0 = random_decision(jax.random.key(9), scn3)
    a, cost, trace = _search(jax.random.key(0), scn3, h, a0, 0, ASAParams(), k=K, max_iter=MAX_ITER)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(a0))
    assert np.all(np.asarray(trace) == float(latency(scn3, h, a0)))


def test_tiny_finds_exhaustive_optimum(tiny):
    """N = 6, M = 2 (729 decisions): ASA from Greedy, T_SA = 20, finds the optimum on most draws."""
    n = 40
    H = sample_channels(jax.random.key(11), tiny, n)
    keys = jax.random.split(jax.random.key(12), n)
    cost = np.array(
        [
            float(
                _search(keys[e], tiny, H[e], greedy(tiny), 20, ASAParams(), k=K, max_iter=MAX_ITER)[
                    1
                ]
            )
            for e in range(n)
        ]
    )
    opt = exhaustive_optima(tiny, H[:n])
    hit = cost <= opt * (1 + 1e-6)
    assert hit.mean() >= 0.9, hit.mean()
    assert np.all(cost >= opt * (1 - 1e-6))


def test_changing_n_iter_does_not_recompile_and_vmap_agrees(scn3, batch):
    traces = []

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(key, h, a0, n_iter, params):
        traces.append(1)
        return asa_search(key, scn3, h, a0, n_iter, params, k=K, max_iter=MAX_ITER)

    H, starts, n_iter, keys = batch
    singles = [
        run(keys[i], H[i], starts[i], n_iter[i], ASAParams(t0=0.1 / (i + 1))) for i in range(4)
    ]
    assert len(traces) == 1 and run._cache_size() == 1
    assert [int(n) for n in n_iter[:4]] == [1, 2, 3, 4]
    # The batched search (a different T_SA per instance) gives the same results as single calls.
    params = ASAParams(t0=0.02)
    a_b, c_b, t_b = _search_b(keys, scn3, H, starts, n_iter, params, k=K, max_iter=MAX_ITER)
    for i in (0, 5, 17, 23):
        a, c, t = run(keys[i], H[i], starts[i], n_iter[i], params)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(a_b[i]))
        np.testing.assert_allclose(np.asarray(t), np.asarray(t_b[i]), rtol=1e-6)
    assert len(traces) == 1
    assert all(
        float(c) <= float(latency(scn3, H[i], starts[i])) for i, (_, c, _) in enumerate(singles)
    )


def test_runs_inside_scan_with_adaptive_t_sa(scn3):
    """An epoch loop: ASA in a lax.scan whose T_SA follows eq. 30; keys are never reused."""
    H = sample_channels(jax.random.key(15), scn3, 6)
    decreases = jnp.array([0.1, 0.1, 0.0, 0.0, 0.0, 0.5])

    def epoch(carry, xs):
        key, t_sa = carry
        h, dd = xs
        key, k_s = jax.random.split(key)
        a, cost, _ = asa_search(k_s, scn3, h, greedy(scn3), t_sa, ASAParams(), k=8, max_iter=5)
        return (key, adapt_t_sa(t_sa, dd, 0.02, max_iter=5)), (t_sa, cost)

    with jax.debug_key_reuse(True):
        _, (t_sas, costs) = jax.jit(
            lambda k: jax.lax.scan(epoch, (k, jnp.int32(4)), (H, decreases))
        )(jax.random.key(16))
    np.testing.assert_array_equal(np.asarray(t_sas), [4, 5, 5, 4, 3, 2])
    assert np.all(
        np.asarray(costs)
        <= np.asarray(batched_latency(scn3, H, jnp.broadcast_to(greedy(scn3), (6, 12))))
    )


def test_adapt_t_sa_eq30():
    cases = [
        (20, 0.05, 21),
        (20, 0.02, 21),
        (20, 0.019, 19),
        (2, 0.0, 1),
        (1, 0.0, 1),
        (1, -3.0, 1),
        (100, 1.0, 100),
        (1, 0.5, 2),
    ]
    for t, dd, want in cases:
        assert int(adapt_t_sa(t, dd, 0.02, max_iter=100)) == want, (t, dd)
    batch = adapt_t_sa(jnp.array([3, 1, 50]), jnp.array([0.5, 0.0, 0.0]), max_iter=50)
    np.testing.assert_array_equal(np.asarray(batch), [4, 1, 49])


def test_plain_sa_never_worse_and_fixed_length(scn3):
    H = sample_channels(jax.random.key(17), scn3, 6)
    a0 = greedy(scn3)
    run = jax.jit(lambda key, h: plain_sa(key, scn3, h, a0, 12, ASAParams(), k=K))
    keys = jax.random.split(jax.random.key(18), 6)
    for e in range(6):
        a, cost, trace = run(keys[e], H[e])
        assert trace.shape == (12,) and np.all(np.diff(np.asarray(trace)) <= 0)
        assert float(cost) <= float(latency(scn3, H[e], a0))
        np.testing.assert_allclose(float(latency(scn3, H[e], a)), float(cost), rtol=1e-6)


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="asa.k"):
        ASAConfig(k=0)
    with pytest.raises(ConfigError, match="asa.max_iter"):
        ASAConfig(max_iter=2.5)
    with pytest.raises(ConfigError, match="t_sa0"):
        ASAConfig(t_sa0=30, max_iter=10)
    with pytest.raises(ConfigError, match="phi_c"):
        asa_from_mapping({"phi_c": 1.5})
    with pytest.raises(ConfigError, match="mut_scale"):
        asa_from_mapping({"mut_scale": -0.1})
    with pytest.raises(ConfigError, match="temperature"):
        asa_from_mapping({"temperature": 1.0})
    cfg, params = asa_from_mapping({"k": 16, "t0": 0.01})
    assert cfg == ASAConfig(k=16) and params == ASAParams(t0=0.01)


def test_state_and_draw_shapes(scn3):
    h = sample_channels(jax.random.key(19), scn3, 1)[0]
    st = asa_init(scn3, h, greedy(scn3), ASAParams())
    assert isinstance(st, ASAState) and st.a.shape == (12,) and st.a.dtype == jnp.int32
    d = sample_draws(jax.random.key(20), 5, 12)
    assert isinstance(d, Draws) and d.u.shape == (5, 12) and d.u_acc.shape == ()


def test_baselines_rows_and_fig7_smoke(tmp_path):
    """The asa/sa/pso rows of ojrs-baselines are never worse than Greedy nor better than exact;
    a bad asa setting fails by name; ojrs-fig7 writes its PNG and CSV."""
    from ojrs_jax.experiments.baselines import BaselinesConfig, run_baselines
    from ojrs_jax.experiments.fig7 import Fig7Config, run_fig7

    system = {"noise": 2e-7}
    scale = {"n_ue": 6, "n_mec": 2, "seed": 2}
    cfg = {
        "system": system,
        "scale": scale,
        "draws": 2,
        "asa": {"k": 16},
        "sa": {"iterations": 5},
        "pso": {"n_particles": 8, "n_iter": 5},
        "methods": ["greedy", "asa", "sa", "pso", "exact"],
    }
    res = run_baselines(BaselinesConfig.from_mapping(cfg))
    for name in ("asa", "sa", "pso"):
        assert np.all(res[name]["latency"] <= res["greedy"]["latency"] * (1 + 1e-6))
        assert np.all(res[name]["latency"] >= res["exact"]["latency"] * (1 - 1e-5))
    with pytest.raises(ConfigError, match="asa.k"):
        BaselinesConfig.from_mapping({**cfg, "asa": {"k": 0}})
    with pytest.raises(ConfigError, match="unknown setting 'draw'"):
        BaselinesConfig.from_mapping({**cfg, "draw": 3})
    assert BaselinesConfig.from_mapping({"epochs": 3}).draws == 3  # the name before `draws`
    f7 = {"system": system, "scale": scale, "draws": 3, "iterations": 4, "asa": {"k": 16}}
    with pytest.raises(ConfigError, match="start must be one of"):
        Fig7Config.from_mapping({**f7, "start": "best"})
    with pytest.raises(ConfigError, match="unknown setting 'iteration'"):
        Fig7Config.from_mapping({**f7, "iteration": 4})
    out = run_fig7(Fig7Config.from_mapping({**f7, "exact": True}), tmp_path)
    assert out["asa_final"] <= out["start"] and out["asa_final"] >= out["exact"] * (1 - 1e-5)
    assert (tmp_path / "fig7.png").stat().st_size > 1000
    assert len((tmp_path / "fig7.csv").read_text().splitlines()) == 6


def test_iteration_draws_are_uniform_and_independent():
    """ASA's counter-hash uniforms: in (0, 1), uniform (chi-square over 64 bins), uncorrelated
    between neighbouring counters, iterations and seeds, and a new stream for a new key."""
    n_iter, k, n = 40, 128, 30
    seeds = stream_seeds(jax.random.key(0))
    u = np.stack([np.asarray(iteration_draws(seeds, g, k, n).u) for g in range(n_iter)])
    assert u.min() > 0 and u.max() < 1
    counts = np.histogram(u, bins=64, range=(0, 1))[0]
    expect = u.size / 64
    chi2 = np.sum((counts - expect) ** 2 / expect)
    assert chi2 < 63 + 5 * np.sqrt(2 * 63), chi2  # 63 dof: mean 63, sd 11.2
    flat = u.reshape(-1) - 0.5
    for lag in (1, n, k * n + 1):  # next UE, next neighbour, next iteration
        corr = np.mean(flat[:-lag] * flat[lag:]) / np.var(flat)
        assert abs(corr) < 5 / np.sqrt(flat.size), (lag, corr)
    other = np.asarray(iteration_draws(stream_seeds(jax.random.key(1)), 0, k, n).u)
    corr = np.corrcoef(u[0].ravel(), other.ravel())[0, 1]
    assert abs(corr) < 5 / np.sqrt(other.size), corr
    assert not np.array_equal(other, u[0])
    np.testing.assert_array_equal(  # sample_draws is a stream's first iteration
        np.asarray(sample_draws(jax.random.key(0), k, n).u), u[0]
    )
