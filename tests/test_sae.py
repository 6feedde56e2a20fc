"""2r-SAE (ojrs_jax.sae) against the NumPy float64 reference: loss, gradient, metrics, memory."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_sae as ref

from ojrs_jax.sae import channel_map, incremental
from ojrs_jax.sae import model as sae
from ojrs_jax.sae import train as sae_train
from ojrs_jax.system.scenario import (
    ConfigError,
    SystemConfig,
    make_scenario,
    path_gain,
    sample_channels,
)


def _scn(m: int, n: int = 30):
    return make_scenario(SystemConfig(n_ue=n, n_mec=m, layout="paper", seed=2))


@functools.cache
def _data(m: int, e: int, n: int = 30, seed: int = 0):
    scn = _scn(m, n)
    h = sample_channels(jax.random.key(seed), scn, e)
    return scn, h, np.asarray(path_gain(scn), np.float64)


def _perturbed_params(cfg, n_in, seed=1):
    """Random parameters with non-zero biases, so every parameter matters."""
    p = sae.init_sae(jax.random.key(seed), cfg, n_in)
    leaves, tree = jax.tree.flatten(p)
    keys = jax.random.split(jax.random.key(seed + 100), len(leaves))
    leaves = [v + 0.1 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, leaves)


def _ref_loss(params_np, x, g, cfg):
    return ref.loss(
        params_np,
        x,
        g,
        kind=cfg.preprocess,
        variant=cfg.variant,
        activation=cfg.activation,
        gamma1=cfg.gamma1,
        gamma2=cfg.gamma2,
        l2=cfg.l2,
        l2_mean=cfg.l2_mean,
        latent_act=cfg.latent_activation,
    )


CASES = [
    dict(variant="2r_sae", preprocess="linear"),
    dict(variant="2r_sae", preprocess="log", activation="tanh", l2="all", l2_mean=False),
    dict(variant="2r_sae", preprocess="linear", latent_activation=False, gamma1=2.0),
    dict(variant="sae", preprocess="linear"),
    dict(variant="ae", preprocess="log", activation="relu"),
]


@pytest.mark.parametrize("kw", CASES)
def test_loss_matches_reference(kw):
    cfg = sae.SAEConfig(**kw)
    scn, h, g = _data(2, 16)
    stats = channel_map.channel_stats(scn, cfg.preprocess)
    x = channel_map.preprocess(h, stats)
    # float32 log of h ~ 1e-6: absolute error ~ eps * |ln h| ~ 1e-6 on values of order 1
    np.testing.assert_allclose(
        np.asarray(x),
        ref.preprocess(np.asarray(h, np.float64), g, cfg.preprocess),
        rtol=2e-5,
        atol=5e-6,
    )
    params = _perturbed_params(cfg, 60)
    got = float(jax.jit(sae.sae_loss, static_argnums=1)(params, cfg, x, stats))
    want = _ref_loss(ref.to_np(params), np.asarray(x, np.float64), g, cfg)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_loss_terms_all_matter():
    """The relative and L2 terms change the 2r loss; the MSE variants ignore them."""
    scn, h, _ = _data(2, 8)
    stats = channel_map.channel_stats(scn)
    x = channel_map.preprocess(h, stats)
    base = sae.SAEConfig()
    params = _perturbed_params(base, 60)
    values = {
        name: float(sae.sae_loss(params, dataclasses.replace(base, **kw), x, stats))
        for name, kw in {
            "2r": {},
            "no_rel": {"gamma1": 0.0},
            "no_l2": {"gamma2": 0.0},
            "sae": {"variant": "sae"},
            "sae_g": {"variant": "sae", "gamma1": 9.0},
        }.items()
    }
    assert values["2r"] > values["no_rel"] > values["sae"]
    assert values["2r"] > values["no_l2"] > values["sae"]
    assert values["sae"] == values["sae_g"]


@pytest.mark.parametrize("kind", ["linear", "log"])
def test_loss_gradient_finite_differences(kind):
    """jax.grad of eq. 23 (in float64) against central differences of the NumPy reference."""
    cfg = sae.SAEConfig(preprocess=kind, l2="all", l2_mean=False, gamma1=1.0, gamma2=0.01)
    g = np.asarray(path_gain(_scn(2, n=5)), np.float64)
    h = g * np.random.default_rng(1).exponential(size=(8, 5, 2))
    params32 = _perturbed_params(cfg, 10)
    with jax.enable_x64(True):
        f64 = functools.partial(jnp.asarray, dtype=jnp.float64)
        loc = np.log(g) - ref.GAMMA_E if kind == "log" else np.zeros_like(g)
        scale = np.full_like(g, np.pi / np.sqrt(6) if kind == "log" else g.mean())
        stats = channel_map.ChannelStats(gain=f64(g), loc=f64(loc), scale=f64(scale), kind=kind)
        x = channel_map.preprocess(f64(h), stats)
        params = jax.tree.map(f64, params32)
        grad = jax.jit(jax.grad(sae.sae_loss), static_argnums=1)
        grads = ref.to_np(grad(params, cfg, x, stats))
        assert x.dtype == jnp.float64
    p_np, x_np = ref.to_np(params), np.asarray(x)
    rng = np.random.default_rng(0)
    eps = 1e-6
    checked = 0
    for name, (w, b) in p_np.items():
        for which, arr in ((0, w), (1, b)):
            for flat in rng.choice(arr.size, size=min(3, arr.size), replace=False):
                idx = np.unravel_index(flat, arr.shape)
                vals = []
                for sign in (1, -1):
                    q = {k: (v[0].copy(), v[1].copy()) for k, v in p_np.items()}
                    q[name][which][idx] += sign * eps
                    vals.append(_ref_loss(q, x_np, g, cfg))
                fd = (vals[0] - vals[1]) / (2 * eps)
                np.testing.assert_allclose(grads[name][which][idx], fd, rtol=1e-5, atol=1e-8)
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_shapes_every_m(m):
    """Shapes by abstract evaluation (nothing is compiled): any batch shape, every M."""
    cfg = sae.SAEConfig()
    n_in = 30 * m
    stats = channel_map.channel_stats(_scn(m))
    key = jax.random.key(0)
    params = jax.eval_shape(lambda k: sae.init_sae(k, cfg, n_in), key)

    def shape(fn, *args):
        return jax.eval_shape(fn, *args).shape

    for batch in [(), (6,), (2, 3)]:
        h = jax.ShapeDtypeStruct((*batch, 30, m), jnp.float32)
        x = jax.ShapeDtypeStruct((*batch, n_in), jnp.float32)
        assert shape(lambda h: channel_map.preprocess(h, stats), h) == (*batch, n_in)
        assert shape(lambda x: channel_map.postprocess(x, stats), x) == (*batch, 30, m)
        assert shape(lambda p, x: sae.encode(p, cfg, x), params, x) == (*batch, 30)
        assert shape(lambda p, x: sae.reconstruct(p, cfg, x), params, x) == (*batch, n_in)
        z = jax.ShapeDtypeStruct((*batch, 30), jnp.float32)
        assert shape(lambda p, z: sae.decode(p, cfg, z), params, z) == (*batch, n_in)
    widths = sae.encoder_widths(cfg, n_in)
    assert widths[-1] == 30 and len(widths) == 2
    assert params["enc_0"]["kernel"].shape == (n_in, widths[0])
    assert params["dec_1"]["kernel"].shape == (widths[0], n_in)
    assert sae.compression_ratio(30, m) == pytest.approx([0.0, 0.5, 2 / 3, 0.75, 0.8][m - 1])


def test_paper_widths():
    assert sae.encoder_widths(sae.SAEConfig(variant="sae"), 60) == (45, 30)
    assert sae.encoder_widths(sae.SAEConfig(variant="ae"), 60) == (30,)
    assert sae.encoder_widths(sae.SAEConfig(layers=4, hidden=[100, 50]), 150) == (100, 50, 30)


@pytest.mark.parametrize("kind", ["linear", "log"])
def test_preprocess_inverse_and_scale(kind):
    scn, h, _ = _data(2, 4000)
    stats = channel_map.channel_stats(scn, kind)
    x = channel_map.preprocess(h, stats)
    np.testing.assert_allclose(
        np.asarray(channel_map.postprocess(x, stats)), np.asarray(h), rtol=1e-4
    )
    xs = np.asarray(x, np.float64)
    if kind == "log":  # exact standardisation of ln Exp(1): every entry mean 0, std 1
        assert np.abs(xs.mean(0)).max() < 0.12 and np.abs(xs.std(0) - 1).max() < 0.12
    else:  # mean 1 over entries (mean of h / gbar)
        assert abs(xs.mean() - 1.0) < 0.02


def test_metrics_match_reference():
    scn, h, g = _data(3, 50)
    h_np = np.asarray(h, np.float64)
    hh = h_np * np.exp(np.random.default_rng(0).normal(0, 0.3, h_np.shape))
    hj, hhj = jnp.asarray(h_np, jnp.float32), jnp.asarray(hh, jnp.float32)
    np.testing.assert_allclose(
        float(channel_map.reconstruction_accuracy(hj, hhj)), ref.accuracy(h_np, hh), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(channel_map.per_ue_accuracy(hj, hhj)), ref.per_ue_accuracy(h_np, hh), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(channel_map.per_ue_relative_error(hj, hhj)),
        ref.per_ue_relative_error(h_np, hh),
        rtol=1e-5,
    )
    assert float(channel_map.reconstruction_accuracy(hj, hj)) == 1.0
    assert (
        float(channel_map.per_ue_relative_error(hj, 3.0 * hj)) < 1e-6
    )  # per-UE scale does not count


def _fifo_order(mem: incremental.Memory) -> np.ndarray:
    data, added = np.asarray(mem.data), int(mem.count)  # count = inputs ever admitted
    cap = data.shape[0]
    if added < cap:
        return data[:added]
    head = added % cap  # the oldest row
    return np.concatenate([data[head:], data[:head]])


def test_memory_fifo_threshold_matches_reference():
    cap, dim, thr = 5, 3, 0.4
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(40, dim)).astype(np.float32)
    errs = rng.uniform(size=40).astype(np.float32)
    r = ref.FifoMemory(cap, thr)
    mem = incremental.memory_init(cap, dim)
    add = jax.jit(incremental.memory_add)
    for x, e in zip(xs, errs, strict=True):
        mem, added = add(mem, x, e, thr)
        assert bool(added) == r.add(x, float(e))
        np.testing.assert_array_equal(_fifo_order(mem), r.contents().reshape(-1, dim))
        assert int(incremental.ring.rows(mem)) == len(r.items)
    assert int(incremental.ring.rows(mem)) == cap  # it filled, then oldest entries left
    # the batched form is the sequential one
    mem0 = incremental.memory_init(cap, dim)
    mem_b, added_b = jax.jit(incremental.memory_add_batch)(mem0, xs, errs, thr)
    np.testing.assert_array_equal(np.asarray(mem_b.data), np.asarray(mem.data))
    np.testing.assert_array_equal(np.asarray(added_b), errs > thr)


def test_train_sae_learns_and_stacks_metrics():
    cfg = sae.SAEConfig(variant="sae", steps=60, batch_size=64)
    scn, h, _ = _data(2, 600)
    stats = channel_map.channel_stats(scn)
    x = channel_map.preprocess(h, stats)
    p0 = sae.init_sae(jax.random.key(0), cfg, 60)
    with jax.debug_key_reuse(True):
        p1, m = sae_train.train_sae(jax.random.key(1), cfg, p0, x[:500], stats, x[500:])
        traces = sae_train.train_sae._cache_size()
        sae_train.train_sae(jax.random.key(2), cfg, p1, x[100:], stats, x[:100])  # new values only
    assert sae_train.train_sae._cache_size() == traces  # no recompilation
    for k in ("loss", "mse", "rel", "l2", "test_loss", "test_acc"):
        assert m[k].shape == (60,), k
    before = float(sae.evaluate(p0, cfg, x[500:], stats)["mse"])
    after = sae.evaluate(p1, cfg, x[500:], stats)
    assert float(after["mse"]) < 0.7 * before
    np.testing.assert_allclose(float(m["test_loss"][-1]), float(after["loss"]), rtol=1e-4)
    np.testing.assert_allclose(float(m["test_acc"][-1]), float(after["acc"]), rtol=1e-4)


def test_incremental_learning_in_scan():
    """Error check gates the memory; retraining moves theta; the online copy follows every
    sync_period steps and stays frozen in between."""
    cfg = sae.SAEConfig(
        variant="sae",
        batch_size=16,
        memory_size=8,
        error_threshold=0.9,
        sync_period=4,
        retrain_steps=2,
    )
    scn, h, _ = _data(2, 30)
    stats = channel_map.channel_stats(scn)
    x = channel_map.preprocess(h, stats)
    state0 = incremental.incremental_init(cfg, sae.init_sae(jax.random.key(0), cfg, 60), 60)

    @jax.jit
    def run(key, state, xs):
        def body(s, kx):
            s, info = incremental.incremental_step(kx[0], s, cfg, kx[1], stats)
            return s, (info, s.params, s.online)

        return jax.lax.scan(body, state, (jax.random.split(key, xs.shape[0]), xs))

    state, (info, params_t, online_t) = run(jax.random.key(3), state0, x)
    errs, added = np.asarray(info["err"]), np.asarray(info["added"])
    np.testing.assert_array_equal(added, errs > cfg.error_threshold)
    assert 0 < added.sum() < len(added)  # the threshold both admits and rejects here
    # the memory holds the last `memory_size` admitted inputs, oldest first
    r = ref.FifoMemory(cfg.memory_size, cfg.error_threshold)
    for xi, e in zip(np.asarray(x), errs, strict=True):
        r.add(xi, float(e))
    np.testing.assert_allclose(_fifo_order(state.memory), r.contents(), rtol=1e-6)
    # error check value = reference MSE of the reconstruction under the pre-step parameters
    p_prev = jax.tree.map(lambda a: np.asarray(a[4]), params_t)
    _, xh = ref.forward(ref.to_np(p_prev), np.asarray(x[5:6], np.float64), cfg.activation)
    np.testing.assert_allclose(errs[5], np.mean((np.asarray(x[5]) - xh[0]) ** 2), rtol=1e-4)
    # sync: online == params exactly at steps 4, 8, ...; otherwise the last synced copy
    leaf = lambda t: np.asarray(t["enc_0"]["kernel"])  # noqa: E731
    p_all, o_all = leaf(params_t), leaf(online_t)
    for t in range(len(x)):
        step = t + 1
        last_sync = (step // cfg.sync_period) * cfg.sync_period
        want = leaf(state0.params) if last_sync == 0 else p_all[last_sync - 1]
        np.testing.assert_array_equal(o_all[t], want)
    assert not np.array_equal(p_all[-1], leaf(state0.params))  # it did retrain
    chex.assert_shape(incremental.online_encode(state, cfg, x), (30, 30))


def test_comparison_configs_share_settings():
    from ojrs_jax.experiments.sae_study import variant_config

    main = sae.SAEConfig(steps=7, learning_rate=0.5, activation="tanh", gamma1=0.3)
    ae = variant_config(main, "ae")
    assert (ae.variant, ae.layers, ae.steps, ae.learning_rate, ae.activation) == (
        "ae",
        2,
        7,
        0.5,
        "tanh",
    )
    assert variant_config(main, "2r_sae").gamma1 == 0.5  # the loss weights come from the preset
    with pytest.raises(ConfigError, match="nope"):
        variant_config(main, "nope")


def test_config_validation():
    assert sae.SAEConfig(variant="ae").layers == 2 and sae.SAEConfig().layers == 3
    cfg = sae.SAEConfig.from_mapping({"variant": "sae", "hidden": [40]})
    assert cfg.hidden == (40,) and hash(cfg) == hash(sae.SAEConfig(variant="sae", hidden=(40,)))
    bad = [
        ({"latnt": 3}, "latnt"),
        ({"variant": "vae"}, "sae.variant"),
        ({"latent": 0}, "sae.latent"),
        ({"steps": 2.5}, "sae.steps"),
        ({"gamma1": -1.0}, "sae.gamma1"),
        ({"learning_rate": float("nan")}, "sae.learning_rate"),
        ({"hidden": [10, 10]}, "sae.hidden"),
        ({"activation": "swishy"}, "sae.activation"),
        ({"preprocess": "sqrt"}, "sae.preprocess"),
        ({"l2_mean": "yes"}, "sae.l2_mean"),
    ]
    for m, field in bad:
        with pytest.raises(ConfigError, match=field):
            sae.SAEConfig.from_mapping(m)


def test_cli_smoke(tmp_path):
    cmd = [sys.executable, "-m", "ojrs_jax.cli.sae", f"hydra.run.dir={tmp_path}", "scale=tiny"]
    fast = [
        "sae.steps=20",
        "train_draws=200",
        "test_draws=100",
        "compare=[]",
        "model_seeds=2",
        "table_mecs=[2]",
        "incremental.epochs=5",
        "deployment_seeds=[0, 1]",
        "fidelity_draws=3",
        "sae.max_steps=40",
    ]
    out = subprocess.run([*cmd, *fast], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for f in (
        "metrics.json",
        "loss_curves.csv",
        "table3.csv",
        "errors.npz",
        "fig3_accuracy.png",
        "fig4_loss.png",
        "fig5_errors_2r_sae.png",
    ):
        assert (tmp_path / f).stat().st_size > 0, f
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["models"]) == {"2r_sae"} and metrics["main"] == "2r_sae"
    assert [row["n_mec"] for row in metrics["table3"]] == [2]
    assert metrics["cr"] == pytest.approx(1 - 30 / 12)  # tiny: N = 6, M = 2, so CR < 0
    assert metrics["incremental"]["epochs"] == 5
    assert len(metrics["models"]["2r_sae"]["test_acc_per_seed"]) == 2
    assert metrics["models"]["2r_sae"]["steps"] in (40, 20)  # plateau rule or budget, chunks of 20
    assert len(metrics["wape_over_deployments"]["2r_sae"]["values"]) == 2
    fig = metrics["figures"]["2r_sae"]
    assert 0 < fig["fidelity"]["nrr"] <= 1 + 1e-9 and fig["fidelity"]["draws"] == 3
    assert fig["paper"]["mean_acc"] == pytest.approx(
        metrics["figures"]["mean_channel"]["paper"]["acc"]
    )
    bad = subprocess.run([*cmd, "sae.latent=-3"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: sae.latent must be a positive integer, got -3"
    ]
