"""Replay buffers (2p-ER and uniform FIFO) against the plain-Python reference, in lockstep."""

from __future__ import annotations

import collections

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_replay import RefPER, RefUniform
from scipy import stats

from ojrs_jax.agent import replay
from ojrs_jax.system.scenario import ConfigError

D, N = 3, 4  # state dim, number of UEs


def _ref(kind: str, capacity: int, params: replay.PERParams):
    if kind == "per":
        return RefPER(capacity, float(params.rho_max), float(params.tau), float(params.epsilon))
    return RefUniform(capacity)


def _compare(state: replay.ReplayState, ref) -> None:
    state = jax.device_get(state)  # one transfer, then NumPy indexing
    np.testing.assert_array_equal(state.valid, ref.valid())
    for i, it in enumerate(ref.slots):
        if it is None:
            continue
        np.testing.assert_allclose(state.s[i], it["s"], rtol=1e-6)
        np.testing.assert_array_equal(state.a[i], it["a"])
        np.testing.assert_allclose(state.theta_norm0[i], it["theta0"], rtol=1e-6)
        np.testing.assert_allclose(state.priority[i], it["p"], rtol=1e-5)
        assert state.inserted[i] == it["t"]
    assert state.count == ref.time
    if state.valid.any():
        w = np.where(state.valid, state.priority.astype(np.float64) ** float(state.params.tau), 0)
        np.testing.assert_allclose(w / w.sum(), ref.probabilities(), rtol=1e-5, atol=1e-9)


def _written_slot(state: replay.ReplayState) -> list[int]:
    hit = np.asarray(state.valid) & (np.asarray(state.inserted) == int(state.count) - 1)
    return np.flatnonzero(hit).tolist()


TRACES: collections.Counter = collections.Counter()  # (kind, capacity, batch, fn) -> traces


def _traced(fn, tag):
    """jax.jit(fn), counting how often JAX traces it (the Python body runs only when tracing)."""

    def counted(*args):
        TRACES[tag] += 1
        return fn(*args)

    return jax.jit(counted)


class _Jitted:
    """One jitted copy of a buffer's functions per (kind, capacity, batch)."""

    cache: dict = {}

    @classmethod
    def get(cls, kind: str, capacity: int, batch: int):
        k = (kind, capacity, batch)
        if k not in cls.cache:
            buf = replay.make_buffer(kind, capacity, batch, D, N)
            cls.cache[k] = (
                buf,
                _traced(buf.add, (*k, "add")),
                _traced(buf.sample, (*k, "sample")),
                _traced(buf.set_priorities, (*k, "set_priorities")),
            )
        return cls.cache[k]


def _run_lockstep(kind, capacity, batch, ops, params, seed):
    """ops: sequence of ("add", log-norm step) or ("set", delta: float | array)."""
    buf, add, sample, setp = _Jitted.get(kind, capacity, batch)
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    state = buf.init(params)
    ref = _ref(kind, capacity, params)
    log_norm = 0.0
    skips = all_kept = 0
    for op, arg in ops:
        if op == "add" or not ref.valid().any():
            log_norm += arg if op == "add" else 0.0
            theta = float(np.float32(np.exp(log_norm)))
            s = rng.normal(size=D).astype(np.float32)
            a = rng.integers(0, 3, N)
            oldest = min(
                (i for i, it in enumerate(ref.slots) if it is not None),
                key=lambda i: ref.slots[i]["t"],
                default=None,
            )
            full = ref.valid().all()
            state = add(state, s, a, jnp.float32(theta))
            slot = ref.add(s, a, theta)
            assert _written_slot(state) == [slot]
            if kind == "per" and full:
                skips += slot != oldest
                kept = [ref._is_preserved(it, theta) for it in ref.slots]
                all_kept += all(kept[:slot] + kept[slot + 1 :]) and capacity > 1
        else:
            key, k = jax.random.split(key)
            _, _, idx = sample(k, state)
            idx = np.asarray(idx)
            assert ref.valid()[idx].all()
            delta = np.asarray(arg, np.float32)
            state = setp(state, jnp.asarray(idx), jnp.asarray(delta))
            ref.set_priorities(idx, delta)
        _compare(state, ref)
    return skips, all_kept


def _random_ops(rng, n_steps, batch):
    ops = []
    for _ in range(n_steps):
        if rng.random() < 0.65:
            r = rng.random()
            # plateaus (everything preserved), drift, and jumps (nothing preserved)
            step = 0.0 if r < 0.25 else rng.normal(0, 0.08) if r < 0.9 else rng.choice([-0.5, 0.5])
            ops.append(("add", float(step)))
        elif rng.random() < 0.5:
            ops.append(("set", float(rng.normal(0, 0.3))))
        else:
            ops.append(("set", rng.normal(0, 0.3, size=batch).astype(np.float32)))
    return ops


CAP, B = 8, 4  # shared sizes, so the jitted functions compile once for most tests


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_lockstep(seed):
    rng = np.random.default_rng(100 + seed)
    params = replay.PERParams(rho_max=[1.2, 1.1, 1.5][seed], tau=[0.6, 1.0, 0.3][seed])
    skips, all_kept = _run_lockstep("per", CAP, B, _random_ops(rng, 250, B), params, seed)
    assert skips > 0  # the preserve rule changed which slot FIFO overwrote
    assert all_kept > 0  # and the "everything preserved" fallback was exercised


@pytest.mark.parametrize("seed", [0, 1])
def test_uniform_lockstep(seed):
    rng = np.random.default_rng(200 + seed)
    _run_lockstep("uniform", CAP, B, _random_ops(rng, 100, B), replay.PERParams(), seed)


@settings(max_examples=12, deadline=None)
@given(
    capacity=st.sampled_from([1, 4]),  # degenerate and shared with the by-hand test
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from([0.0, 0.05, -0.05, 0.3, -0.3])),
            st.tuples(st.just("set"), st.floats(-1.0, 1.0, width=32)),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_per_lockstep_hypothesis(capacity, ops):
    _run_lockstep("per", capacity, B, ops, replay.PERParams(), 0)


def test_preserve_rule_by_hand():
    buf, add, _, _ = _Jitted.get("per", 4, B)
    st_ = buf.init()
    z, za = jnp.zeros(D), jnp.zeros(N, jnp.int32)
    for norm in [1.0, 1.0, 2.0, 2.0]:
        st_ = add(st_, z, za, norm)
    # norm 2.1: slots 2, 3 have rho = 1.05 (kept), slots 0, 1 rho = 2.1 -> oldest of those: 0
    st_ = add(st_, z, za, 2.1)
    assert _written_slot(st_) == [0]
    # norm 1.0: slot 1 (rho 1) kept; slots 0 (t=4), 2 (t=2), 3 (t=3) evictable -> oldest: 2
    st_ = add(st_, z, za, 1.0)
    assert _written_slot(st_) == [2]
    # everything preserved: overwrite the oldest overall, the buffer keeps accepting data
    wide = st_.replace(params=st_.params.replace(rho_max=jnp.float32(100.0)))
    assert bool(jnp.all(replay.preserved(wide, 1.5)))
    st2 = add(wide, z, za, 1.5)
    assert _written_slot(st2) == [1]  # slot 1 (t = 1) is the oldest overall


def test_new_priority_is_current_max():
    buf, add, _, setp = _Jitted.get("per", CAP, B)
    st_ = buf.init()
    z, za = jnp.zeros(D), jnp.zeros(N, jnp.int32)
    st_ = add(st_, z, za, 1.0)
    assert float(st_.priority[0]) == 1.0  # empty buffer -> 1.0
    st_ = add(add(st_, z, za, 1.0), z, za, 1.0)
    st_ = setp(st_, jnp.array([0, 1, 2, 2]), jnp.array([0.5, -0.2, 0.1, 0.1]))
    np.testing.assert_allclose(st_.priority[:3], [0.501, 0.201, 0.101], rtol=1e-6)
    st_ = add(st_, z, za, 1.0)
    np.testing.assert_allclose(st_.priority[3], 0.501, rtol=1e-6)
    # duplicates keep the larger new priority, even if lower than the old one
    st_ = setp(st_, jnp.array([1, 1, 3, 3]), jnp.array([0.05, 0.02, 0.0, 0.0]))
    np.testing.assert_allclose(np.asarray(st_.priority)[[1, 3]], [0.051, 0.001], rtol=1e-5)
    # a scalar delta (one loss decrease per trained batch, as in the paper) broadcasts
    st_ = setp(st_, jnp.array([0, 1, 2, 3]), jnp.float32(0.3))
    np.testing.assert_allclose(st_.priority[:4], 0.301, rtol=1e-6)


def _chi2(counts: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """Pearson statistic and its 1e-4 critical value over the cells with probs > 0."""
    m = probs > 0
    exp = probs[m] * counts.sum()
    stat = float(np.sum((counts[m] - exp) ** 2 / exp))
    return stat, float(stats.chi2.ppf(1 - 1e-4, df=m.sum() - 1))


def _draw(kind: str, batch: int):
    """Jitted (keys (R,), state) -> idx (R, batch), one trace for every call."""
    sample = replay.sample if kind == "per" else replay.uniform_sample

    def draw(key, state):
        return sample(key, state, batch)[2]

    return jax.jit(jax.vmap(chex.assert_max_traces(draw, n=1), in_axes=(0, None)))


def test_per_sampling_frequencies():
    chex.clear_trace_counter()
    n_valid, reps = 6, 32
    buf, add, _, setp = _Jitted.get("per", CAP, B)
    st_ = buf.init()
    for i in range(n_valid):
        st_ = add(st_, jnp.full(D, i, jnp.float32), jnp.zeros(N, jnp.int32), 1.0)
    deltas = np.array([0.0, 0.1, 0.3, 0.6, 1.0, 2.0], np.float32)
    st_ = setp(st_, jnp.arange(4), jnp.asarray(deltas[:4]))
    st_ = setp(st_, jnp.array([4, 4, 5, 5]), jnp.asarray(deltas[[4, 4, 5, 5]]))
    draw = _draw("per", 4096)
    keys = jax.random.split(jax.random.key(7), reps)
    for tau in [0.6, 1.0, 0.0]:  # a leaf: changing it must not recompile
        s_tau = st_.replace(params=st_.params.replace(tau=jnp.float32(tau)))
        counts = np.bincount(np.asarray(draw(keys, s_tau)).ravel(), minlength=CAP)
        assert counts[n_valid:].sum() == 0  # never an empty slot
        p = deltas.astype(np.float64) + 0.001
        probs = np.zeros(CAP)
        probs[:n_valid] = p**tau / np.sum(p**tau)
        np.testing.assert_allclose(replay.probabilities(s_tau), probs, rtol=1e-5, atol=1e-8)
        stat, crit = _chi2(counts, probs)
        assert stat < crit, (tau, stat, crit)
        if tau > 0:  # the test has power: uniform sampling would fail it by far
            assert _chi2(counts, (probs > 0) / n_valid)[0] > 10 * crit


@pytest.mark.parametrize("n_add", [5, 19])
def test_uniform_sampling_frequencies(n_add):
    chex.clear_trace_counter()
    buf, add, _, _ = _Jitted.get("uniform", CAP, B)
    st_ = buf.init()
    for i in range(n_add):
        st_ = add(st_, jnp.full(D, i, jnp.float32), jnp.zeros(N, jnp.int32), 1.0 + i)
    idx = _draw("uniform", 4096)(jax.random.split(jax.random.key(3), 16), st_)
    counts = np.bincount(np.asarray(idx).ravel(), minlength=CAP)
    probs = np.asarray(st_.valid, float) / float(np.sum(st_.valid))
    assert counts[probs == 0].sum() == 0
    stat, crit = _chi2(counts, probs)
    assert stat < crit


@pytest.mark.parametrize("kind", replay.REPLAY_KINDS)
def test_sample_only_valid_and_rows_match(kind):
    buf, add, sample, _ = _Jitted.get(kind, CAP, B)
    st_ = buf.init()
    for i in range(3):
        st_ = add(st_, jnp.full(D, i + 1.0), jnp.full(N, i, jnp.int32), 1.0 + 0.5 * i)
    keys = jax.random.split(jax.random.key(0), 64)
    s, a, idx = jax.jit(jax.vmap(buf.sample, in_axes=(0, None)))(keys, st_)
    chex.assert_shape([s, a, idx], [(64, B, D), (64, B, N), (64, B)])
    idx = np.asarray(idx)
    assert set(idx.ravel().tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(s, idx[..., None] + np.ones(D))
    np.testing.assert_array_equal(a, idx[..., None] * np.ones(N, int))


@pytest.mark.parametrize("kind", replay.REPLAY_KINDS)
def test_scan_vmap_loop_agree_without_recompiling(kind):
    """A lax.scan of add/sample/set_priorities, vmapped over buffers with different
    hyperparameters, equals a Python loop of jitted calls per buffer; those never retrace."""
    nb, steps = 3, 24
    buf, add, sample, setp = _Jitted.get(kind, CAP, B)
    rng = np.random.default_rng(11)
    s = jnp.asarray(rng.normal(size=(nb, steps, D)), jnp.float32)
    a = jnp.asarray(rng.integers(0, 3, (nb, steps, N)), jnp.int32)
    th = jnp.asarray(np.exp(np.cumsum(rng.normal(0, 0.1, (nb, steps)), 1)), jnp.float32)
    delta = jnp.asarray(rng.normal(0, 0.5, (nb, steps, B)), jnp.float32)
    params = replay.PERParams(
        rho_max=jnp.array([1.1, 1.2, 1.5]), tau=jnp.array([0.6, 0.0, 1.0]), epsilon=0.001
    )

    def run(p, key, s, a, th, delta):
        def step(carry, x):
            key, state = carry
            key, k = jax.random.split(key)
            state = buf.add(state, x[0], x[1], x[2])
            _, _, idx = buf.sample(k, state)
            return (key, buf.set_priorities(state, idx, x[3])), idx

        (_, state), idxs = jax.lax.scan(step, (key, buf.init(p)), (s, a, th, delta))
        return state, idxs

    batched = jax.jit(jax.vmap(run, in_axes=(replay.PERParams(0, 0, None), 0, 0, 0, 0, 0)))
    keys = jax.random.split(jax.random.key(4), nb)
    with jax.debug_key_reuse(True):  # the buffer code itself never reuses a key
        states, idxs = batched(params, keys, s, a, th, delta)
    # the comparisons below reuse the same keys on purpose
    for b in range(nb):
        if b == 1:  # everything is compiled now; new hyperparameters must not retrace
            seen = dict(TRACES)
        key = keys[b]
        state = buf.init(replay.PERParams(params.rho_max[b], params.tau[b], 0.001))
        for t in range(steps):
            key, k = jax.random.split(key)
            state = add(state, s[b, t], a[b, t], th[b, t])
            _, _, idx = sample(k, state)
            np.testing.assert_array_equal(idx, idxs[b, t])
            state = setp(state, idx, delta[b, t])
        chex.assert_trees_all_close(jax.tree.map(lambda x, b=b: x[b], states), state, rtol=1e-6)
    assert dict(TRACES) == seen


@pytest.mark.parametrize("field", ["capacity", "batch", "state_dim", "n_ue"])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_bad_sizes_name_the_field(field, bad):
    sizes = {"capacity": 8, "batch": 4, "state_dim": D, "n_ue": N, field: bad}
    for make in (replay.make_per_buffer, replay.make_uniform_buffer):
        with pytest.raises(ConfigError, match=field):
            make(**sizes)


def test_unknown_kind():
    with pytest.raises(ConfigError, match="replay"):
        replay.make_buffer("prioritised", 8, 4, D, N)


def test_replay_group_is_parsed_in_one_place():
    from ojrs_jax.agent.config import TrainConfig
    from ojrs_jax.agent.replay import replay_from_mapping
    from ojrs_jax.core.settings import ConfigError

    kind, per, eps = replay_from_mapping({"kind": "uniform", "explore_eps": 0.1, "tau": 0.5})
    assert (kind, float(per.tau), float(per.rho_max), eps) == ("uniform", 0.5, 1.2, 0.1)
    assert replay_from_mapping(None)[0] == "per" and replay_from_mapping({})[2] is None
    bads = [
        ({"kind": "lifo"}, "replay.kind"),
        ({"rho": 1.0}, "'rho'"),
        ({"tau": -1}, "replay.tau"),
        ({"epsilon": True}, "replay.epsilon"),
    ]
    for bad, needle in bads:
        for parse in (
            replay_from_mapping,
            lambda m: TrainConfig.from_mapping({}, replay=m),
            lambda m: TrainConfig.from_mapping(
                {"arch": "feature", "state": "deployment"}, replay=m
            ),
        ):
            with pytest.raises(ConfigError, match=needle):
                parse(bad)
    assert TrainConfig.from_mapping({}, replay={"explore_eps": 0.25}).explore_eps == 0.25
    feature = {"arch": "feature", "state": "deployment"}
    assert float(TrainConfig.from_mapping(feature, replay={"tau": 0.3}).per.tau) == pytest.approx(
        0.3
    )
