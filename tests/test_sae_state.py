"""SAE codes as the DRL state: minmax preprocessing, the per-UE shared encoder, the plateau
rule, the per-UE-code policy and the accuracy figures (ojrs_jax.sae.model, sae_metrics, policy),
against the NumPy float64 references of reference_sae.py."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
import reference_sae as ref
from conftest import fixed_trainer

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import PerUEPolicy, inference_flops, inference_fn, init_policy
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import metrics as sae_metrics
from ojrs_jax.sae import model as sae
from ojrs_jax.sae import train as sae_train
from ojrs_jax.system.exact import exact_miqp
from ojrs_jax.system.scenario import ConfigError, SystemConfig, make_scenario, sample_channels


def _scn(m=2, n=30):
    return make_scenario(SystemConfig(n_ue=n, n_mec=m, layout="paper", seed=2))


def test_minmax_matches_reference_and_inverts():
    scn = _scn()
    h_tr = sample_channels(jax.random.key(0), scn, 500)
    h = sample_channels(jax.random.key(1), scn, 50)
    st = channel_map.channel_stats(scn, "minmax", h_tr)
    x = channel_map.preprocess(h, st)
    want = ref.minmax_preprocess(np.asarray(h, np.float64), np.asarray(h_tr, np.float64))
    np.testing.assert_allclose(np.asarray(x), want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(channel_map.postprocess(x, st)), np.asarray(h), rtol=1e-4)
    x_tr = np.asarray(channel_map.preprocess(h_tr, st)).reshape(500, 30, 2)
    np.testing.assert_allclose(x_tr.min(0), 0.0, atol=1e-6)  # per link: 0 at the min
    np.testing.assert_allclose(x_tr.max(0), 1.0, rtol=1e-5)  # and 1 at the max
    # the default bounds come from a fixed sample: the same on every call (decide time)
    a, b = channel_map.channel_stats(scn, "minmax"), channel_map.channel_stats(scn, "minmax")
    np.testing.assert_array_equal(np.asarray(a.loc), np.asarray(b.loc))
    assert np.all(np.asarray(a.scale) > 0)


@pytest.mark.parametrize("kind", ["linear", "minmax"])
def test_per_ue_structure_matches_row_by_row_reference(kind):
    """per_ue applies ONE autoencoder to each UE's row; code (B, N*k), reconstruction (B, N*M)."""
    cfg = sae.SAEConfig(
        variant="2r_sae", structure="per_ue", per_ue_code=2, hidden=[5], preprocess=kind
    )
    scn = _scn(m=3, n=6)
    h = sample_channels(jax.random.key(3), scn, 7)
    st = channel_map.channel_stats(scn, kind)
    x = channel_map.preprocess(h, st)
    params = sae.init_sae(jax.random.key(4), cfg, 18, 3)
    assert params["enc_0"]["kernel"].shape == (3, 5) and cfg.state_width(6) == 12
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    params = jax.tree.unflatten(
        tree, [v + 0.1 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    )
    z_ref, xh_ref = ref.forward_per_ue(ref.to_np(params), np.asarray(x, np.float64), 3, "elu")
    z = sae.encode(params, cfg, x)
    assert z.shape == (7, 12)
    np.testing.assert_allclose(np.asarray(z), z_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(sae.reconstruct(params, cfg, x)), xh_ref, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(sae.decode(params, cfg, z)), xh_ref, rtol=1e-4, atol=1e-5)
    # the loss is eq. 23 on the per-UE reconstruction (same terms as the flat model)
    g = np.asarray(st.gain, np.float64)
    terms = sae.loss_terms(params, cfg, x, st)
    mse_ref = np.mean((np.asarray(x, np.float64) - xh_ref) ** 2)
    np.testing.assert_allclose(float(terms["mse"]), mse_ref, rtol=1e-4)
    assert g.shape == (6, 3)


def test_plateau_rule_and_budget():
    assert not sae_train.plateau_reached([1.0], 0.01)
    assert not sae_train.plateau_reached([1.0, 0.98], 0.01)  # 2% better: keep going
    assert sae_train.plateau_reached([1.0, 0.995], 0.01)
    assert sae_train.plateau_reached([1.0, 1.2], 0.01)  # worse: stop
    cfg = sae.SAEConfig(steps=10, max_steps=45, plateau_tol=0.0)
    calls = []

    def chunk(key, carry):  # a loss that keeps falling: runs to the budget, 5 chunks
        calls.append(carry)
        return carry + 1, {"test_loss": np.full((2, 10), 10.0 - carry)}

    carry, curves, steps = sae_train.run_to_plateau(jax.random.key(0), cfg, chunk, 0)
    assert (carry, steps, curves["test_loss"].shape) == (5, 50, (2, 50))

    def flat(key, carry):  # a flat loss: stops after the second chunk
        return carry + 1, {"test_loss": np.ones((10,))}

    assert sae_train.run_to_plateau(jax.random.key(0), cfg, flat, 0)[2] == 20
    cuts = []

    def decay(carry, factor):
        cuts.append(factor)
        return carry

    # each plateau cuts the step size (plateau_decays = 2 by default), the third one stops
    assert sae_train.run_to_plateau(jax.random.key(0), cfg, flat, 0, decay)[2] == 40
    assert cuts == [0.2, 0.2]
    # the cut reaches Adam: the first update shrinks by the factor
    opt = sae_train.optimizer(cfg)
    p = {"w": np.ones(3, np.float32)}
    st = opt.init(p)
    g = {"w": np.array([1.0, -2.0, 3.0], np.float32)}
    u0 = opt.update(g, st, p)[0]["w"]
    u1 = opt.update(g, sae_train.scale_learning_rate(st, 0.2), p)[0]["w"]
    np.testing.assert_allclose(np.asarray(u1), 0.2 * np.asarray(u0), rtol=1e-5)
    with pytest.raises(ConfigError, match="max_steps"):
        sae.SAEConfig(max_steps=-1)
    with pytest.raises(ConfigError, match="structure"):
        sae.SAEConfig(structure="tree")


def test_converged_training_beats_fixed_budget():
    scn = _scn(m=1, n=6)
    h = sample_channels(jax.random.key(0), scn, 600)
    st = channel_map.channel_stats(scn, "linear")
    x, xv = channel_map.preprocess(h[:500], st), channel_map.preprocess(h[500:], st)
    cfg = sae.SAEConfig(variant="sae", hidden=[6], latent=6, steps=100, max_steps=1500)
    p0 = sae.init_sae(jax.random.key(1), cfg, 6, 1)
    p_fix, _ = sae_train.train_sae(jax.random.key(2), cfg, p0, x, st)
    p_conv, curves, steps = sae_train.train_sae_converged(jax.random.key(2), cfg, p0, x, st, xv)
    assert 200 <= steps <= 1500 and curves["test_loss"].shape == (steps,)
    acc = [float(sae.evaluate(p, cfg, xv, st)["acc"]) for p in (p_fix, p_conv)]
    assert acc[1] > acc[0]


def test_train_best_of_keeps_the_initialisation_with_the_lowest_held_out_loss():
    scn = _scn(m=1, n=6)
    h = sample_channels(jax.random.key(0), scn, 600)
    st = channel_map.channel_stats(scn, "linear")
    x, xv = channel_map.preprocess(h[:500], st), channel_map.preprocess(h[500:], st)
    cfg = sae.SAEConfig(
        variant="sae", hidden=[6], latent=6, steps=50, max_steps=100, restarts=2, plateau_tol=0.0
    )  # a falling loss: both run the 100 steps
    good = sae.init_sae(jax.random.key(1), cfg, 6, 1)
    dead = jax.tree.map(lambda a: a * 0.0 - 5.0, good)  # ELU saturated at -1 everywhere
    for order, want in (((good, dead), 0), ((dead, good), 1)):
        stacked = jax.tree.map(lambda *a: np.stack(a), *order)
        p, curves, steps, scores = sae_train.train_best_of(
            jax.random.key(2), cfg, stacked, x, st, xv
        )
        assert scores.shape == (2,) and int(np.argmin(scores)) == want
        assert scores[want] < scores[1 - want] and curves["test_loss"].shape == (steps,)
        # the kept parameters are that initialisation's own training on the same minibatches
        alone, _, steps1 = sae_train.train_sae_converged(
            jax.random.key(2), cfg, order[want], x, st, xv
        )
        assert steps1 == steps == 100
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
    with pytest.raises(ConfigError, match="restarts"):
        sae.SAEConfig(restarts=0)


def test_paper_accuracy_matches_reference():
    rng = np.random.default_rng(0)
    h_tr = rng.exponential(size=(300, 4, 2)) * [[1.0, 3.0]]
    h = rng.exponential(size=(50, 4, 2)) * [[1.0, 3.0]]
    hh = h + 0.1 * rng.normal(size=h.shape)
    got = sae_metrics.paper_accuracy(h, hh, h_tr)
    want = ref.paper_accuracy(h, hh, h_tr)
    np.testing.assert_allclose([got["acc"], got["mean_acc"], got["skill"]], want, rtol=1e-12)
    exact = sae_metrics.paper_accuracy(h, h, h_tr)
    assert exact["acc"] == 1.0 and exact["skill"] == 1.0
    mean_pred = sae_metrics.paper_accuracy(h, np.broadcast_to(h_tr.mean(0), h.shape), h_tr)
    assert abs(mean_pred["skill"]) < 1e-12 and mean_pred["acc"] == pytest.approx(got["mean_acc"])


def test_decision_fidelity_against_brute_force():
    """N = 5, M = 2: the optimum on hhat (brute force over 3^5 decisions) judged on h."""
    scn = _scn(m=2, n=5)
    h = np.asarray(sample_channels(jax.random.key(7), scn, 4), np.float64)
    hh = h * np.random.default_rng(1).uniform(0.2, 5.0, size=h.shape)
    got = sae_metrics.decision_fidelity(scn, h, hh)
    from ojrs_jax.system.exact import latency_np

    decisions = np.array(list(itertools.product(range(3), repeat=5)))

    def best(hc):
        return decisions[np.argmin([latency_np(scn, hc, a) for a in decisions])]

    ratios, same = [], []
    for e in range(4):
        a_opt, a_hat = best(h[e]), best(hh[e])
        ratios.append(latency_np(scn, h[e], a_opt) / latency_np(scn, h[e], a_hat))
        same.append(np.mean(a_opt == a_hat))
    assert got["nrr"] == pytest.approx(np.mean(ratios), rel=1e-9)
    assert got["same_option"] == pytest.approx(np.mean(same))
    assert got["certified"] == 4 and got["nrr"] < 1.0  # the perturbation costs something
    perfect = sae_metrics.decision_fidelity(scn, h, h, a_opt=got["a_opt"])
    assert perfect["nrr"] == pytest.approx(1.0) and perfect["same_option"] == 1.0
    assert exact_miqp(scn, h[0]).status == "optimal"


def test_per_ue_code_policy_equivariant_fast_path_and_wiring():
    net = PerUEPolicy(n_ue=5, n_mec=3, hidden=(8, 8), embed=4, code_width=2)
    params = init_policy(jax.random.key(0), net, 10)
    s = jax.random.normal(jax.random.key(1), (4, 10))
    out = net.apply(params, s)
    assert out.shape == (4, 5, 4)
    np.testing.assert_allclose(
        np.asarray(inference_fn(net, params)(s)), np.asarray(out), rtol=1e-5, atol=1e-5
    )
    perm = np.array([2, 0, 4, 1, 3])
    p = params["params"]
    out_perm = net.apply(
        {"params": {**p, "ue_embedding": p["ue_embedding"][perm]}},
        s.reshape(4, 5, 2)[:, perm].reshape(4, 10),
    )
    np.testing.assert_allclose(np.asarray(out_perm), np.asarray(out)[:, perm], rtol=1e-5, atol=1e-6)
    assert inference_flops(net, params) < inference_flops(
        PerUEPolicy(n_ue=5, n_mec=3, hidden=(8, 8), embed=4),
        init_policy(jax.random.key(0), PerUEPolicy(n_ue=5, n_mec=3, hidden=(8, 8), embed=4), 15),
    )  # noqa: E501
    with pytest.raises(ConfigError, match="state=sae"):
        TrainConfig(arch="per_ue_code", state="channel")
    scn53 = make_scenario(SystemConfig(n_ue=5, n_mec=3))
    with pytest.raises(ConfigError, match="structure=per_ue"):
        fixed_trainer(TrainConfig(arch="per_ue_code"), sae.SAEConfig(), scn53)
    tr = fixed_trainer(
        TrainConfig(arch="per_ue_code"), sae.SAEConfig(structure="per_ue", per_ue_code=2), scn53
    )
    assert tr.net.code_width == 2


def test_sae_state_preset_composes_and_paper_is_unchanged():
    from hydra import compose, initialize_config_module

    from ojrs_jax.app.hydra import to_container
    from ojrs_jax.run.build import build

    with initialize_config_module("ojrs_jax.conf", version_base=None):
        cfg = to_container(compose("train", overrides=["train=sae_state"]))
        paper = to_container(compose("train", overrides=["train=paper"]))
    spec = build(cfg)
    assert (spec.train_cfg.state, spec.train_cfg.arch) == ("sae", "per_ue_code")
    assert spec.trainer.net.code_width == 1 and spec.sae_cfg.state_width(30) == 30
    assert spec.sae_cfg.max_steps > 0 and spec.sae_cfg.structure == "per_ue"
    assert spec.sae_cfg.restarts == 4
    p = build(paper)
    assert (p.sae_cfg.structure, p.sae_cfg.max_steps, p.sae_cfg.steps) == ("flat", 0, 500)
    assert p.sae_cfg.restarts == 1
    assert p.train_cfg.arch == "mlp" and p.sae_cfg.preprocess == "linear"
