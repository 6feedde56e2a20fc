"""The code learned for the decision (train.code_weight > 0, issue 28): the joint agent's loss
and actions against the NumPy references of the policy MLP (reference_algorithm3) and of eq. 23
(reference_sae); joint training moves the encoder, and what a run writes decides as it did."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_algorithm3 as ref_a3
import reference_sae as ref_sae
from conftest import decide_channels, fixed_trainer

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import PerUEPolicy, policy_loss
from ojrs_jax.agent.trainer import make_env
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.run.scheduler import make_scheduler
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

GAMMAS = dict(gamma1=0.5, gamma2=0.08, l2="weights", l2_mean=True)


def _scn(n=5, m=2):
    return make_scenario(SystemConfig(n_ue=n, n_mec=m, layout="paper", seed=2))


def _layers(policy) -> list:
    inner = policy["params"]
    names = sorted(inner, key=lambda k: int(k.split("_")[1]))
    return [
        (np.asarray(inner[k]["kernel"], np.float64), np.asarray(inner[k]["bias"], np.float64))
        for k in names
    ]


def test_code_weight_needs_the_sae_state_and_online_learning():
    with pytest.raises(ConfigError, match="code_weight"):
        TrainConfig(code_weight=1.0, incremental_sae=False)
    with pytest.raises(ConfigError, match="code_weight"):
        TrainConfig(code_weight=1.0, state="channel")
    with pytest.raises(ConfigError, match="code_weight"):
        TrainConfig(code_weight=-1.0)
    with pytest.raises(ConfigError, match="init_from is not available"):
        TrainConfig(code_weight=1.0, init_from="runs/earlier")
    assert TrainConfig(code_weight=0.5).code_weight == 0.5


@pytest.mark.parametrize("weight", [0.3, 2.0])
def test_joint_loss_and_action_match_numpy(weight):
    """loss = eq. 25 on encoder(x) + weight x eq. 23 on x; act = the policy's argmax on the code."""
    scn = _scn()
    sae_cfg = sae.SAEConfig(variant="2r_sae", latent=4, hidden=[7])
    cfg = TrainConfig(
        epochs=20, phi=5, batch=8, buffer=16, hidden=(6,), lam=0.05, code_weight=weight
    )
    trainer = fixed_trainer(cfg, sae_cfg, scn)
    agent = trainer.agent
    assert agent.learns_code and agent.state_dim == 10  # the buffer stores x (N M), not the code
    pre = sae.init_sae(jax.random.key(1), sae_cfg, 10, 2)
    theta = agent.init(jax.random.key(2), pre)
    leaves, tree = jax.tree.flatten(theta["encoder"])
    noise = jax.random.split(jax.random.key(3), len(leaves))
    theta["encoder"] = jax.tree.unflatten(
        tree, [v + 0.2 * jax.random.normal(k, v.shape) for v, k in zip(leaves, noise, strict=True)]
    )
    h = sample_channels(jax.random.key(4), scn, 6)
    st = channel_map.channel_stats(scn, "linear")
    x = channel_map.preprocess(h, st)
    a_star = jax.random.randint(jax.random.key(5), (6, 5), 0, 3)
    got = float(agent.loss(theta, jax.random.key(6), x, a_star, jnp.float32(cfg.lam)))

    enc = ref_sae.to_np(theta["encoder"])
    x64, g = np.asarray(x, np.float64), np.asarray(st.gain, np.float64)
    z, _ = ref_sae.forward(enc, x64, "elu")
    layers = _layers(theta["policy"])
    want = ref_a3.loss_ref(layers, z, np.asarray(a_star), cfg.lam, 3)
    want += weight * ref_sae.loss(
        enc, x64, g, kind="linear", variant="2r_sae", activation="elu", **GAMMAS
    )
    assert got == pytest.approx(want, rel=2e-4)
    a = np.asarray(agent.act(theta, x))
    want_a = np.stack([ref_a3.act_ref(layers, z[b], 3) for b in range(6)])
    np.testing.assert_array_equal(a, want_a)


def test_joint_training_moves_the_encoder_and_the_model_decides_as_trained():
    """A few blocks of Algorithm 3 with code_weight > 0 change the encoder the policy reads
    (frozen with code_weight = 0 and incremental learning off); the model of the state, read by
    the scheduler as `model.msgpack` is, decides as the trainer does."""
    scn = _scn(n=6)
    sae_cfg = sae.SAEConfig(variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[8])
    common = dict(epochs=40, phi=5, batch=8, buffer=32, updates=2, chunk=40, change_epoch=0)
    common.update(state="sae", arch="per_ue_code", ue_hidden=(8,), ue_embed=4)
    pre = sae.init_sae(jax.random.key(1), sae_cfg, 12, 2)
    moved = {}
    for name, extra in (
        ("joint", dict(code_weight=1.0)),
        ("frozen", dict(incremental_sae=False)),
    ):
        cfg = TrainConfig(**common, **extra)
        trainer = fixed_trainer(cfg, sae_cfg, scn)
        params = make_env(jax.random.key(5), scn, cfg, sae_cfg)
        state, metrics = trainer.train(jax.random.key(0), params, pre)
        model = trainer.model(state)
        moved[name] = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(model["encoder"]), jax.tree.leaves(pre), strict=True)
        )
        h = sample_channels(jax.random.key(9), scn, 12)
        online = None if state.sae is None else state.sae.online
        want = np.asarray(decide_channels(trainer, state.policy, online, params, h))
        sched = make_scheduler(scn, cfg, sae_cfg, model["policy"], model["encoder"])
        np.testing.assert_array_equal(np.asarray(sched.decide(h)), want)
        assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    assert moved["joint"] > 1e-3 and moved["frozen"] == 0.0


@pytest.mark.parametrize("m", [2, 5])
def test_sae_joint_preset_is_the_papers_method_at_the_papers_code_width(m):
    """train=sae_joint: the policy reads the code only, eq. 23 in the encoder's loss, Algorithm
    1's online learning on with a step size > 0, one code number per UE (CR = 1 - 1/M)."""
    from hydra import compose, initialize_config_module

    from ojrs_jax.app.hydra import to_container
    from ojrs_jax.run.build import build

    with initialize_config_module("ojrs_jax.conf", version_base=None):
        cfg = to_container(compose("train", overrides=["train=sae_joint", f"scale=paper_m{m}"]))
    spec = build(cfg)
    tc, sc = spec.train_cfg, spec.sae_cfg
    assert (tc.state, tc.arch, tc.incremental_sae) == ("sae", "per_ue_code", True)
    assert tc.code_weight > 0 and tc.learning_rate > 0 and spec.trainer.agent.learns_code
    assert sc.variant == "2r_sae" and sc.uses_2r and sc.structure == "per_ue"
    assert sc.state_width(30) == 30
    assert sae.compression_ratio(30, m, sc.state_width(30)) == pytest.approx(1 - 1 / m)


def test_warm_start_settings():
    with pytest.raises(ConfigError, match="warm_start > 0 .* needs train.code_weight > 0"):
        TrainConfig(warm_start=10)
    for bad in (-1, True, 2.5):
        with pytest.raises(ConfigError, match="train.warm_start must be an integer >= 0"):
            TrainConfig(code_weight=1.0, warm_start=bad)
    with pytest.raises(ConfigError, match="train.warm_start_draws must be a positive integer"):
        TrainConfig(code_weight=1.0, warm_start=5, warm_start_draws=0)


def test_asa_labels_are_exact_optima_on_a_small_problem():
    """label_channels: ASA from Greedy with asa.max_iter iterations; on N = 5, M = 2 (243
    decisions) every label is no worse than Greedy and almost every one is the optimum found by
    enumeration with the NumPy latency of reference_asa."""
    import itertools

    import reference_asa as ref_asa

    from ojrs_jax.search.asa import ASAParams, label_channels
    from ojrs_jax.search.baselines import greedy

    scn = _scn()
    h = sample_channels(jax.random.key(3), scn, 16)
    a = np.asarray(label_channels(jax.random.key(4), scn, h, ASAParams(), k=32, n_iter=30))
    s = ref_asa.scenario_np(scn)
    a_greedy = np.asarray(greedy(scn))
    optimal = 0
    for e in range(16):
        hh = np.asarray(h[e], np.float64)
        best = min(
            ref_asa.latency_ref(s, hh, np.asarray(c)) for c in itertools.product(range(3), repeat=5)
        )
        got = ref_asa.latency_ref(s, hh, a[e])
        assert got <= ref_asa.latency_ref(s, hh, a_greedy) * (1 + 1e-6)
        optimal += got <= best * (1 + 1e-6)
    assert optimal >= 15


def test_warm_start_fits_the_policy_and_the_code_to_the_asa_labels():
    """train.warm_start: the joint agent's initial parameters are fitted (eq. 25 + w x eq. 23)
    to ASA labels of fresh channels: on other channels their decisions agree with the labels
    far more often than the cold start's, and the encoder has moved from the pretrained one."""
    from ojrs_jax.search.asa import label_channels

    scn = _scn(n=6)
    sae_cfg = sae.SAEConfig(variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[8])
    common = dict(epochs=10, phi=5, batch=32, buffer=32, code_weight=0.01, change_epoch=0)
    common.update(state="sae", arch="per_ue_code", ue_hidden=(16,), ue_embed=4, lam=1e-4)
    common.update(learning_rate=3e-3, warm_start_draws=256)
    pre = sae.init_sae(jax.random.key(1), sae_cfg, 12, 2)
    h = sample_channels(jax.random.key(77), scn, 64)
    x = channel_map.preprocess(h, channel_map.channel_stats(scn, "linear"))
    cfg0 = TrainConfig(**common)
    labels = np.asarray(
        label_channels(
            jax.random.key(8), scn, h, cfg0.asa_params, k=cfg0.asa.k, n_iter=cfg0.asa.max_iter
        )
    )
    agree, moved = {}, {}
    for steps in (0, 400):
        agent = fixed_trainer(TrainConfig(**common, warm_start=steps), sae_cfg, scn).agent
        theta = agent.init(jax.random.key(2), pre)
        agree[steps] = float(np.mean(np.asarray(agent.act(theta, x)) == labels))
        moved[steps] = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(theta["encoder"]), jax.tree.leaves(pre), strict=True)
        )
    assert moved[0] == 0.0 and moved[400] > 1e-3
    assert agree[400] >= 0.85 and agree[400] >= agree[0] + 0.5, agree


def test_warm_start_keeps_the_initialisation_that_decides_best():
    """With several pretrained SAEs (stacked, sae.restarts > 1) the warm start fits each with the
    policy and keeps the one whose decisions fit held-out labels best: beside a useful SAE, one
    whose encoder kernels are all zero (a constant code, which no gradient can revive) is never
    kept, in either order."""
    scn = _scn(n=6)
    sae_cfg = sae.SAEConfig(variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[8])
    common = dict(epochs=10, phi=5, batch=32, buffer=32, code_weight=0.01, change_epoch=0)
    common.update(state="sae", arch="per_ue_code", ue_hidden=(16,), ue_embed=4, lam=1e-4)
    common.update(learning_rate=3e-3, warm_start_draws=256, warm_start=300)
    agent = fixed_trainer(TrainConfig(**common), sae_cfg, scn).agent
    good = sae.init_sae(jax.random.key(1), sae_cfg, 12, 2)
    dead = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.zeros_like(v) if path[-1].key == "kernel" else v, good
    )
    for order in ((good, dead), (dead, good)):
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *order)
        theta = agent.init(jax.random.key(2), stacked)
        enc = theta["encoder"]
        assert enc["enc_0"]["kernel"].shape == good["enc_0"]["kernel"].shape  # one SAE kept
        assert float(jnp.max(jnp.abs(enc["enc_0"]["kernel"]))) > 1e-2


def test_resume_with_a_warm_start_runs_no_warm_start_and_ends_as_uninterrupted(tmp_path):
    """`resume=true` reads the checkpoint against the initial state's shapes only: the warm
    start (and the rest of the initialisation) is not run again, and the resumed run writes the
    metrics and model of the run that was never interrupted."""
    import dataclasses

    from ojrs_jax.app.compose import compose_config
    from ojrs_jax.run.train import parse, train_run

    over = [
        "train=sae_joint",
        "scale=tiny",
        "train.epochs=40",
        "train.chunk=20",
        "train.warm_start=20",
        "train.warm_start_draws=64",
        "sae.max_steps=0",
        "sae.steps=20",
        "sae_pretrain.draws=64",
        "eval.draws=8",
        "eval.exact=false",
    ]
    spec, opts = parse(compose_config(over))
    full = train_run(spec, opts, tmp_path / "full")
    assert full["warm_start_seconds"] > 0

    class Stop(Exception):
        pass

    calls = []

    def stop_after_first(state, env):
        if calls:
            raise Stop
        calls.append(1)
        return spec.trainer.run_chunk(state, env)

    broken = dataclasses.replace(
        spec, trainer=dataclasses.replace(spec.trainer, run_chunk=stop_after_first)
    )
    with pytest.raises(Stop):
        train_run(broken, opts, tmp_path / "cut")
    assert (tmp_path / "cut" / "checkpoint" / "state.msgpack").exists()

    concrete = []

    def spy(*args):
        concrete.append(not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args)))
        return spec.trainer.init(*args)

    resumed_spec = dataclasses.replace(spec, trainer=dataclasses.replace(spec.trainer, init=spy))
    resumed = train_run(resumed_spec, opts, tmp_path / "cut", resume=True)
    assert concrete == [False]  # traced for the shapes, never run
    assert "warm_start_seconds" not in resumed
    assert (tmp_path / "cut" / "metrics.csv").read_text() == (
        tmp_path / "full" / "metrics.csv"
    ).read_text()
    assert (tmp_path / "cut" / "model.msgpack").read_bytes() == (
        tmp_path / "full" / "model.msgpack"
    ).read_bytes()


def test_algorithm1_settings_unused_by_the_joint_code_are_named_in_a_warning():
    """With train.code_weight > 0 the SAE learns in the policy's Adam step; a changed setting of
    Algorithm 1's separate retraining is named in a warning, an unchanged one is not."""
    import warnings

    from ojrs_jax.run.build import build

    base = {
        "scale": {"n_ue": 4, "n_mec": 2, "area": 50.0, "layout": "paper", "seed": 2},
        "train": {"state": "sae", "arch": "per_ue_code", "code_weight": 0.001, "epochs": 20},
        "sae": {"structure": "per_ue", "per_ue_code": 1},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(base)  # nothing changed: no warning
    changed = {**base, "sae": {**base["sae"], "retrain_learning_rate": 0.01, "sync_period": 3}}
    with pytest.warns(UserWarning, match=r"sae.retrain_learning_rate, sae.sync_period have no"):
        build(changed)
    plain = {**changed, "train": {**base["train"], "code_weight": 0.0}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(plain)  # Algorithm 1 uses them: no warning


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _teacher(cfg, scn):
    """The teacher network of `train.distill`, built here from the settings it is documented by."""
    return PerUEPolicy(n_ue=scn.weights.shape[0], n_mec=2, hidden=cfg.ue_hidden, embed=cfg.ue_embed)


def _distill_setup(distill=4, weight=0.3, temperature=1.0):
    scn = _scn()
    sae_cfg = sae.SAEConfig(variant="2r_sae", latent=4, hidden=[7])
    cfg = TrainConfig(
        epochs=20,
        phi=5,
        batch=8,
        buffer=16,
        hidden=(6,),
        lam=0.05,
        code_weight=weight,
        distill=distill,
        distill_temperature=temperature,
        ue_hidden=(9,),
        ue_embed=3,
    )
    agent = fixed_trainer(cfg, sae_cfg, scn).agent
    theta = agent.init(jax.random.key(2), sae.init_sae(jax.random.key(1), sae_cfg, 10, 2))
    h = sample_channels(jax.random.key(4), scn, 6)
    st = channel_map.channel_stats(scn, "linear")
    x = channel_map.preprocess(h, st)
    a_star = jax.random.randint(jax.random.key(5), (6, 5), 0, 3)
    return scn, sae_cfg, cfg, agent, theta, st, x, a_star


def test_distill_settings():
    with pytest.raises(ConfigError, match="distill > 0 .* needs train.code_weight > 0"):
        TrainConfig(distill=16)
    for bad in (-1, True, 2.5):
        with pytest.raises(ConfigError, match="train.distill must be an integer >= 0"):
            TrainConfig(code_weight=1.0, distill=bad)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ConfigError, match="train.distill_temperature must be a finite"):
            TrainConfig(code_weight=1.0, distill=4, distill_temperature=bad)
    with pytest.raises(ConfigError, match="distill_temperature=2.0 .* needs train.distill > 0"):
        TrainConfig(code_weight=1.0, distill_temperature=2.0)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_distill_loss_matches_numpy(temperature):
    """train.distill: the teacher (reading the channel) on the replayed rows by eq. 25, plus the
    code's policy against the teacher's softmax on the replayed rows and `distill` fresh channels
    of the key, plus lambda/2 ||policy||^2 and w x eq. 23 on the replayed rows; the action stays
    the code's policy's. With train.distill_temperature T both the teacher's and the policy's
    logits are divided by T in that term and it is multiplied by T^2 (the teacher's own eq. 25
    stays at T = 1). NumPy from the teacher's logits, the code by reference_sae, the policy
    MLP by reference_algorithm3."""
    scn, sae_cfg, cfg, agent, theta, st, x, a_star = _distill_setup(temperature=temperature)
    assert set(theta) == {"policy", "encoder", "teacher"}
    key = jax.random.key(6)
    got = float(agent.loss(theta, key, x, a_star, jnp.float32(cfg.lam)))
    h_fresh = sample_channels(key, scn, cfg.distill)
    x_all = np.concatenate(
        [np.asarray(x, np.float64), np.asarray(channel_map.preprocess(h_fresh, st), np.float64)]
    )
    x_all = x_all.reshape(6 + cfg.distill, 10)
    teacher = _teacher(cfg, scn)
    t_logits = np.asarray(teacher.apply(theta["teacher"], jnp.asarray(x_all, jnp.float32)))
    t_logp = _log_softmax(t_logits.astype(np.float64))
    t_leaves = [np.asarray(v, np.float64) for v in jax.tree.leaves(theta["teacher"])]
    onehot = np.eye(3)[np.asarray(a_star)]
    want = -np.mean(np.sum(onehot * t_logp[:6], -1)) + 0.5 * cfg.lam * sum(
        np.sum(v**2) for v in t_leaves
    )
    enc = ref_sae.to_np(theta["encoder"])
    z, _ = ref_sae.forward(enc, x_all, "elu")
    layers = _layers(theta["policy"])
    s_logits, _ = ref_a3.forward(layers, z)
    T = temperature
    s_logp = _log_softmax(s_logits.reshape(-1, 5, 3) / T)
    p_t = np.exp(_log_softmax(t_logits.astype(np.float64) / T))
    want += -(T**2) * np.mean(np.sum(p_t * s_logp, -1)) + 0.5 * cfg.lam * ref_a3.norm_sq(layers)
    g = np.asarray(st.gain, np.float64)
    want += cfg.code_weight * ref_sae.loss(
        enc, x_all[:6], g, kind="linear", variant="2r_sae", activation="elu", **GAMMAS
    )
    assert got == pytest.approx(want, rel=2e-4)
    assert float(agent.loss(theta, jax.random.key(7), x, a_star, cfg.lam)) != pytest.approx(
        got, rel=1e-6
    )  # the fresh channels come from the key
    a = np.asarray(agent.act(theta, x))
    want_a = np.stack([ref_a3.act_ref(layers, z[b], 3) for b in range(6)])
    np.testing.assert_array_equal(a, want_a)


def test_distill_teacher_learns_only_from_the_labels():
    """The teacher's probabilities are targets, held fixed: the loss's gradient for the teacher
    is that of its own eq. 25 on the replayed rows, whatever the code's policy does; the code's
    policy and the encoder get gradients from the student's terms."""
    scn, sae_cfg, cfg, agent, theta, st, x, a_star = _distill_setup()
    key = jax.random.key(6)
    grads = jax.grad(agent.loss)(theta, key, x, a_star, cfg.lam)
    teacher = _teacher(cfg, scn)
    own = jax.grad(lambda t: policy_loss(teacher, t, x, a_star, cfg.lam))(theta["teacher"])
    for got, want in zip(jax.tree.leaves(grads["teacher"]), jax.tree.leaves(own), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
    assert max(float(jnp.max(jnp.abs(v))) for v in jax.tree.leaves(grads["policy"])) > 1e-4
    assert max(float(jnp.max(jnp.abs(v))) for v in jax.tree.leaves(grads["encoder"])) > 1e-4


def test_distill_training_brings_the_code_policy_to_the_teacher():
    """A short Algorithm 3 run with train.distill: the teacher learns the searched actions (its
    decisions agree with ASA's labels on other channels far more than at the start), the code's
    policy comes to agree with the teacher, and the saved model holds no teacher."""
    from ojrs_jax.search.asa import label_channels

    scn = _scn(n=6)
    sae_cfg = sae.SAEConfig(variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[8])
    common = dict(epochs=300, phi=5, batch=32, buffer=256, updates=4, chunk=300, change_epoch=0)
    common.update(state="sae", arch="per_ue_code", ue_hidden=(16,), ue_embed=4, lam=1e-4)
    common.update(learning_rate=3e-3, code_weight=0.01, distill=32)
    cfg = TrainConfig(**common)
    trainer = fixed_trainer(cfg, sae_cfg, scn)
    params = make_env(jax.random.key(5), scn, cfg, sae_cfg)
    pre = sae.init_sae(jax.random.key(1), sae_cfg, 12, 2)
    h = sample_channels(jax.random.key(77), scn, 128)
    x = channel_map.preprocess(h, channel_map.channel_stats(scn, "linear"))
    labels = np.asarray(
        label_channels(
            jax.random.key(8), scn, h, cfg.asa_params, k=cfg.asa.k, n_iter=cfg.asa.max_iter
        )
    )
    teacher = _teacher(cfg, scn)

    def scores(theta):
        t = np.asarray(jnp.argmax(teacher.apply(theta["teacher"], x), -1))
        s = np.asarray(trainer.agent.act(theta, x))
        return float(np.mean(t == labels)), float(np.mean(s == t))

    t0, s0 = scores(trainer.agent.init(jax.random.key(0), pre))
    state, metrics = trainer.train(jax.random.key(0), params, pre)
    t1, s1 = scores(state.policy)
    assert t1 >= 0.85 and t1 >= t0 + 0.2, (t0, t1)
    assert s1 >= 0.85 and s1 >= s0 + 0.2, (s0, s1)
    assert set(trainer.model(state)) == {"policy", "encoder"}
