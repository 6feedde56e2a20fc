"""Policy loss (eq. 25) against NumPy; Algorithm 3 end to end: learning, determinism, resume."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import decide_channels

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import PolicyNet, act, init_policy, policy_loss
from ojrs_jax.run.build import build, pretrain_sae
from ojrs_jax.run.checkpoint import load_state, save_state
from ojrs_jax.run.evaluation import epochs_to_stable
from ojrs_jax.sae.model import init_sae
from ojrs_jax.system.p2 import batched_latency
from ojrs_jax.system.scenario import ConfigError, sample_channels

TINY = {
    "scale": {"n_ue": 6, "n_mec": 2, "area": 50.0, "layout": "paper", "seed": 2},
    "system": {"noise": 2e-7},
    "sae": {"latent": 8, "steps": 100, "batch_size": 32, "memory_size": 64},
    "asa": {"k": 16, "max_iter": 8, "t_sa0": 4},
    "replay": {"kind": "per"},
    "train": {
        "epochs": 400,
        "phi": 5,
        "batch": 32,
        "buffer": 128,
        "chunk": 200,
        "learning_rate": 3e-3,
        "lam": 1e-4,
        "change_epoch": 0,
    },
    "sae_pretrain": {"draws": 256},
    "seed": 0,
}


def np_policy_loss(params, s, a_star, lam):
    """Eq. 25 in float64 NumPy: MLP with ReLU, per-UE log-softmax, mean CE + lam/2 ||theta||^2."""
    p = params["params"]
    layers = sorted(p, key=lambda k: int(k.split("_")[1]))
    x = np.asarray(s, np.float64)
    for i, name in enumerate(layers):
        x = x @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"], np.float64)
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    b, n = a_star.shape
    logits = x.reshape(b, n, -1)
    logz = np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1)) + logits.max(-1)
    ce = -np.mean(np.take_along_axis(logits, a_star[..., None], -1)[..., 0] - logz)
    l2 = sum(np.sum(np.asarray(v, np.float64) ** 2) for v in jax.tree.leaves(params))
    return ce + 0.5 * lam * l2


@pytest.mark.parametrize("n,m,hidden", [(6, 2, (12, 8)), (30, 2, (120, 80)), (10, 5, (16,))])
def test_policy_loss_matches_numpy(n, m, hidden):
    net = PolicyNet(n_ue=n, n_mec=m, hidden=hidden)
    params = init_policy(jax.random.key(0), net, 7)
    s = jax.random.normal(jax.random.key(1), (5, 7))
    a = jax.random.randint(jax.random.key(2), (5, n), 0, m + 1)
    got = float(policy_loss(net, params, s, a, 0.02))
    np.testing.assert_allclose(
        got, np_policy_loss(params, np.asarray(s), np.asarray(a), 0.02), rtol=2e-5
    )
    assert net.apply(params, s).shape == (5, n, m + 1)


def test_train_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="train.phi"):
        TrainConfig(phi=0)
    with pytest.raises(ConfigError, match="train.replay"):
        TrainConfig(replay="prioritised")
    with pytest.raises(ConfigError, match="unknown train setting 'gamma'"):
        TrainConfig.from_mapping({"gamma": 0.9})
    with pytest.raises(ConfigError, match="explore_eps"):
        TrainConfig.from_mapping({}, replay={"kind": "uniform", "explore_eps": 2.0})


def test_epochs_to_stable():
    r = np.concatenate([np.linspace(0.0, 1.0, 1000), np.ones(3000)])
    t = epochs_to_stable(r, window=100, tol=0.02)
    assert 900 <= t <= 1100
    assert epochs_to_stable(np.ones(2000), window=100) == 100


@pytest.fixture(scope="module")
def tiny_run():
    spec = build(TINY)
    keys = spec.keys()
    sae_params, _ = pretrain_sae(keys["sae"], spec, n_test=64)
    env = spec.env_params()
    state, metrics = spec.trainer.train(keys["train"], env, sae_params)
    return spec, env, sae_params, state, jax.tree.map(np.asarray, metrics)


def test_tiny_training_learns_and_beats_random(tiny_run):
    spec, env, _, state, m = tiny_run
    assert m["reward"].shape == (400,) and int(state.epoch) == 400
    assert np.all(np.isfinite(m["loss"]))
    # the searched action is never worse than the policy's own action
    assert np.all(m["latency_search"] <= m["latency"] * (1 + 1e-5))
    # the policy improves: later rewards beat the first epochs'
    assert m["reward"][-100:].mean() > m["reward"][:20].mean()
    # on held-out channels the policy (no search) beats Random by a clear margin
    H = sample_channels(jax.random.key(123), spec.scn, 300)
    a = decide_channels(spec.trainer, state.policy, state.sae.online, env, H)
    l_pol = np.asarray(batched_latency(spec.scn, H, a))
    a_rand = jax.random.randint(jax.random.key(5), a.shape, 0, 3)
    l_rand = np.asarray(batched_latency(spec.scn, H, a_rand))
    assert np.median(l_pol) < 0.9 * np.median(l_rand)


def test_identical_seeds_identical_metrics(tiny_run):
    spec, env, sae_params, state, m = tiny_run
    state2, m2 = spec.trainer.train(spec.keys()["train"], env, sae_params)
    for k in m:
        np.testing.assert_array_equal(np.asarray(m2[k]), m[k], err_msg=k)
    _, m3 = spec.trainer.train(jax.random.key(99), env, sae_params)
    assert not np.array_equal(np.asarray(m3["latency"]), m["latency"])


def test_chunks_and_resume_equal_one_scan(tiny_run, tmp_path):
    """Two chunks with a checkpoint round trip in between give exactly the one-scan run."""
    spec, env, sae_params, state, m = tiny_run
    st = spec.trainer.init(spec.keys()["train"], sae_params)
    st, m1 = spec.trainer.run_chunk(st, env)
    save_state(tmp_path, st, jax.tree.map(np.asarray, m1), int(st.epoch))
    template = spec.trainer.init(jax.random.key(7), sae_params)
    st_loaded, m_saved, epoch = load_state(tmp_path, template)
    assert epoch == 200
    st2, m2 = spec.trainer.run_chunk(st_loaded, env)
    for k in m:
        np.testing.assert_array_equal(
            np.concatenate([m_saved[k], np.asarray(m2[k])]), m[k], err_msg=k
        )
    np.testing.assert_array_equal(jax.tree.leaves(st2.policy)[0], jax.tree.leaves(state.policy)[0])


def test_vmapped_seeds_equal_looped(tiny_run):
    """Seeds run under vmap equal seeds run one by one. Batched matmuls may round differently
    in the last bit, which can flip a near-tie of a discrete choice after ~100 epochs, so the
    comparison covers 60 epochs (12 policy updates) where every step must agree."""
    _, env, sae_params, _, _ = tiny_run
    spec = build({**TINY, "train": {**TINY["train"], "epochs": 60, "chunk": 60}})
    keys = jax.random.split(jax.random.key(3), 3)
    _, mv = jax.vmap(spec.trainer.train, (0, None, None))(keys, env, sae_params)
    for i in range(3):
        _, ml = spec.trainer.train(keys[i], env, sae_params)
        for k in ("latency", "latency_search", "t_sa", "buffer_size"):
            np.testing.assert_array_equal(np.asarray(mv[k][i]), np.asarray(ml[k]), err_msg=k)
        np.testing.assert_allclose(np.asarray(mv["loss"][i]), np.asarray(ml["loss"]), rtol=1e-5)


def test_weight_change_applies_after_change_epoch():
    cfg = {**TINY, "train": {**TINY["train"], "change_epoch": 200}}
    spec = build(cfg)
    env = spec.env_params()
    assert int(env.change_epoch) == 200
    w = np.asarray(env.weights_after)
    assert w.shape == (6,) and np.all((w >= 0.5) & (w <= 1.5))
    assert not np.allclose(w, np.asarray(spec.scn.weights))
    from ojrs_jax.env.fixed import scenario_at

    np.testing.assert_array_equal(scenario_at(env, jnp.int32(199)).weights, spec.scn.weights)
    np.testing.assert_array_equal(scenario_at(env, jnp.int32(200)).weights, w)


def test_per_ue_policy_is_permutation_equivariant():
    """Permuting the UEs of the state and of the UE embedding permutes the logits."""
    from ojrs_jax.agent.policy import PerUEPolicy

    net = PerUEPolicy(n_ue=7, n_mec=3)
    params = init_policy(jax.random.key(0), net, 21)
    s = jax.random.uniform(jax.random.key(1), (4, 21), minval=0.1, maxval=3.0)
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    s_perm = s.reshape(4, 7, 3)[:, perm].reshape(4, 21)
    p = params["params"]
    p_perm = {**p, "ue_embedding": p["ue_embedding"][perm]}
    out = net.apply(params, s)
    out_perm = net.apply({"params": p_perm}, s_perm)
    assert out.shape == (4, 7, 4)
    np.testing.assert_allclose(np.asarray(out_perm), np.asarray(out)[:, perm], rtol=1e-5, atol=1e-6)


def test_per_ue_policy_trains_and_needs_channel_state():
    with pytest.raises(ConfigError, match="state=channel"):
        TrainConfig(arch="per_ue", state="sae")
    spec = build({**TINY, "train": {**TINY["train"], "arch": "per_ue", "state": "channel"}})
    sae_params, _ = pretrain_sae(spec.keys()["sae"], spec, n_test=64)
    env = spec.env_params()
    state, m = spec.trainer.train(spec.keys()["train"], env, sae_params)
    m = jax.tree.map(np.asarray, m)
    assert np.all(np.isfinite(m["loss"])) and m["reward"][-100:].mean() > m["reward"][:20].mean()
    H = sample_channels(jax.random.key(123), spec.scn, 300)
    a = decide_channels(spec.trainer, state.policy, state.sae.online, env, H)
    l_pol = np.asarray(batched_latency(spec.scn, H, a))
    a_rand = jax.random.randint(jax.random.key(5), a.shape, 0, 3)
    assert np.median(l_pol) < 0.9 * np.median(np.asarray(batched_latency(spec.scn, H, a_rand)))


@pytest.mark.parametrize("arch", ["mlp", "per_ue"])
def test_local_bias_only_moves_the_local_logit(arch):
    """train.local_bias adds b to the initial output bias of option 0 of every UE, nothing else;
    with a large b the untrained policy decides "all local"."""
    from ojrs_jax.agent.policy import PerUEPolicy

    n, m = 5, 3
    net = PolicyNet(n, m, (8,)) if arch == "mlp" else PerUEPolicy(n, m, hidden=(8,), embed=4)
    p0 = init_policy(jax.random.key(0), net, n * m)
    p1 = init_policy(jax.random.key(0), net, n * m, local_bias=2.5)
    last = "Dense_1" if arch == "mlp" else "Dense_2"
    diff = jax.tree.map(lambda a, b: np.asarray(b) - np.asarray(a), p0, p1)["params"]
    for name, layer in diff.items():
        for leaf_name, d in layer.items() if isinstance(layer, dict) else [("", layer)]:
            if name == last and leaf_name == "bias":
                want = np.where(np.arange(d.size) % (m + 1) == 0, 2.5, 0.0)
                np.testing.assert_allclose(d, want, atol=1e-6)
            else:
                assert not np.any(d), (name, leaf_name)
    s = jax.random.uniform(jax.random.key(1), (64, n * m), minval=0.1, maxval=3.0)
    a = act(net, init_policy(jax.random.key(0), net, n * m, local_bias=100.0), s)
    assert a.shape == (64, n) and not np.any(np.asarray(a))


def test_per_ue_settings_are_validated_and_used():
    with pytest.raises(ConfigError, match="train.ue_hidden"):
        TrainConfig(ue_hidden=(0,))
    with pytest.raises(ConfigError, match="train.ue_embed"):
        TrainConfig(ue_embed=0)
    with pytest.raises(ConfigError, match="train.local_bias"):
        TrainConfig(local_bias=float("nan"))
    train = {**TINY["train"], "arch": "per_ue", "state": "channel", "ue_hidden": [12, 10]}
    spec = build({**TINY, "train": {**train, "ue_embed": 5}})
    assert spec.trainer.net.hidden == (12, 10) and spec.trainer.net.embed == 5


def test_large_preset_composes_strictly_and_runs():
    """`train=large` (a global preset: train, asa, sae and eval settings) composes over any scale,
    passes the strict settings check, starts all local and runs a chunk of Algorithm 3."""
    from hydra import compose, initialize_config_module

    from ojrs_jax.app.hydra import check_settings, to_container

    over = ["scale=tiny", "train=large"]
    with initialize_config_module("ojrs_jax.conf", version_base=None):
        defaults = to_container(compose("train", overrides=over))
        cfg = to_container(compose("train", overrides=[*over, "train.epochs=40", "train.chunk=20"]))
    check_settings(cfg, defaults)
    assert cfg["train"]["arch"] == "per_ue" and cfg["asa"]["k"] == 32 and cfg["sae"]["hidden"]
    # the preset's evaluation size wins over conf/train.yaml's 1000 draws (which `train=paper`
    # keeps; the default `train=main` sets 500), the command line wins
    assert cfg["eval"]["draws"] == 20
    with initialize_config_module("ojrs_jax.conf", version_base=None):
        plain = to_container(compose("train", overrides=["scale=tiny", "train=paper"]))
        main = to_container(compose("train", overrides=["scale=tiny"]))
        cli = to_container(compose("train", overrides=[*over, "eval.draws=7"]))
    assert plain["eval"]["draws"] == 1000 and cli["eval"]["draws"] == 7
    assert main["eval"]["draws"] == 500 and main["train"]["arch"] == "per_ue"
    spec = build(cfg)
    # the SAE is not the policy input in this preset (state=channel): no pretraining needed
    n_in = spec.scn.n_ue * spec.scn.n_mec
    st = spec.trainer.init(spec.keys()["train"], init_sae(jax.random.key(0), spec.sae_cfg, n_in))
    env = spec.env_params()
    H = sample_channels(jax.random.key(3), spec.scn, 32)
    assert not np.any(
        np.asarray(decide_channels(spec.trainer, st.policy, st.sae.online, env, H))
    )  # local
    st, m = spec.trainer.run_chunk(st, env)
    assert int(st.epoch) == 20 and np.all(np.isfinite(np.asarray(m["loss"])))
    assert np.all(np.asarray(m["t_sa"]) == 20)  # adaptive T_SA is off in this preset


def test_pretrain_sae_with_restarts_keeps_the_best_initialisation():
    spec = build({**TINY, "sae": {**TINY["sae"], "restarts": 3}})
    params, rep = pretrain_sae(spec.keys()["sae"], spec, n_test=64)
    losses = rep["restart_losses"]
    assert len(losses) == 3 and losses[rep["restart"]] == min(losses)
    # the kept parameters are one of the three runs: the returned held-out loss is that run's
    # (the score averages the last tenth of its steps, the report the end)
    assert rep["loss"] <= max(losses) and np.isfinite(rep["loss"])
    one = pretrain_sae(spec.keys()["sae"], build(TINY), n_test=64)[1]
    assert "restart" not in one


def test_polyak_average_follows_its_recursion_and_decides(tiny_run, tmp_path):
    """train.average = d: after every round avg <- d avg + (1 - d) theta (checked in float64
    against the policy of each block, run one block per chunk); training itself is the run
    without averaging, bit for bit; the average is what decides and what the run saves."""
    spec, env, sae_params, state, m = tiny_run
    d = 0.8
    cfg = {**TINY, "train": {**TINY["train"], "epochs": 40, "chunk": 5, "average": d}}
    avg_spec = build(cfg)
    plain = build({**cfg, "train": {**cfg["train"], "average": 0.0}})
    st = avg_spec.trainer.init(spec.keys()["train"], sae_params)
    ref = jax.tree.map(lambda x: np.asarray(x, np.float64), st.policy)
    assert (
        st.average is not None and plain.trainer.init(jax.random.key(0), sae_params).average is None
    )
    for _ in range(8):
        st, _ = avg_spec.trainer.run_chunk(st, env)
        ref = jax.tree.map(lambda a, p: d * a + (1 - d) * np.asarray(p, np.float64), ref, st.policy)
    for got, want in zip(jax.tree.leaves(st.average), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-6)
    # the average moved away from the last parameters: it is not a copy of them
    gap = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(jax.tree.leaves(st.average), jax.tree.leaves(st.policy), strict=True)
    )
    assert gap > 1e-4
    # training does not depend on the average: the plain run reaches the same last parameters
    st_plain, _ = plain.trainer.train(spec.keys()["train"], env, sae_params)
    for a, b in zip(jax.tree.leaves(st_plain.policy), jax.tree.leaves(st.policy), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the average decides: deciding() and the saved model hold it, not the last theta
    assert avg_spec.trainer.deciding(st) is st.average
    model = avg_spec.trainer.model(st)
    np.testing.assert_array_equal(
        jax.tree.leaves(model["policy"])[0], jax.tree.leaves(st.average)[0]
    )
    assert plain.trainer.deciding(st_plain) is st_plain.policy
    # the final evaluation scores the average's decisions, not the last theta's
    from ojrs_jax.run.evaluation import evaluate_run, held_out
    from ojrs_jax.system.certify import cases, certify

    key = jax.random.key(3)
    rep = evaluate_run(avg_spec.trainer, st, env, key, draws=64, exact=False)
    problems = held_out(avg_spec.trainer.env, jax.random.split(key)[0], env, 64, int(st.epoch))
    online = st.sae.online
    a_avg = avg_spec.trainer.decide(st.average, online, env, problems)
    a_last = avg_spec.trainer.decide(st.policy, online, env, problems)
    assert not np.array_equal(np.asarray(a_avg), np.asarray(a_last))
    want = certify(cases(problems), {"policy": a_avg}, exact=False)["latency_policy"]
    assert rep["latency_policy"] == want
    # so does Table III's evaluator (states with a leading seed axis)
    from ojrs_jax.run.evaluation import Reference, nrr_evaluator
    from ojrs_jax.system.certify import latency64

    H = problems.h
    ones = np.ones(H.shape[0])
    ref = Reference(scn=spec.scn, H=H, exact=ones, pso=ones, certified=H.shape[0])
    measure = nrr_evaluator(avg_spec.trainer, env, (ref, ref))
    got = measure(jax.tree.map(lambda x: x[None], st), 0)["latency"]
    np.testing.assert_allclose(got, [latency64(spec.scn, H, np.asarray(a_avg)).mean()])


@pytest.mark.parametrize("bad", [1.0, -0.1, True, "0.9", float("nan")])
def test_average_setting_is_validated(bad):
    with pytest.raises(ConfigError, match="train.average"):
        TrainConfig(average=bad)
