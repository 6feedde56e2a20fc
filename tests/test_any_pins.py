"""Pins of the any-deployment and run-directory code that mutation testing found loose: each
test kills a single-point mutant of real-bug shape that the rest of the suite let through
(stationary fading at the start of a walk, the moves cap of ASA, padded UEs in the feature
policy's decision, exploration, the weight change inside a rollout, a mobile task that stops
moving, Random on a padded deployment, the certified evaluation's remapping and channels, the
float32 range, the 1 m floor, the training-range warning on task sizes, a killed run started
again, parameter divergence, a non-finite latency, relative output paths)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_deployment as ref
from conftest import TINY_CLI_ARGS

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.agent.agents import make_agent
from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.trainer import make_env, make_trainer
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.env.distribution import DeploymentDistribution
from ojrs_jax.env.fixed import FixedDeployment, make_params
from ojrs_jax.run.inputs import make_deployment
from ojrs_jax.run.loop import run_chunks
from ojrs_jax.run.scheduler import make_any_scheduler
from ojrs_jax.sae.model import SAEConfig, init_sae
from ojrs_jax.search.asa import ASAParams, problem_probs, search, search_with
from ojrs_jax.search.baselines import random_decision
from ojrs_jax.system.certify import cases, certify
from ojrs_jax.system.deployment import (
    DeploymentConfig,
    Problem,
    mobile_init,
    problem_costs,
    random_deployment,
    rayleigh,
)
from ojrs_jax.system.p2 import latency
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

SYS = SystemConfig(noise=2e-7)
PAD = DeploymentConfig(kind="random", n_ue=(3, 9), n_max=9, n_mec=(1, 3), m_max=4)


def padded(seed: int, n: int, m: int):
    k_d, k_h = jax.random.split(jax.random.key(seed))
    dep = random_deployment(k_d, PAD, SYS, n, m)
    return dep, rayleigh(k_h, dep)


def test_a_walk_starts_from_stationary_fading():
    cfg = DeploymentConfig(kind="mobile", n_ue=(200, 200), n_max=200, n_mec=(10, 10), m_max=10)
    st = mobile_init(jax.random.key(0), cfg, SYS)
    fading = np.asarray(st.fading)  # real and imaginary parts, each N(0, 1/2)
    assert abs(fading.var() - 0.5) < 0.03
    assert abs(np.sum(fading**2, axis=-1).mean() - 1.0) < 0.05  # |l|^2 ~ Exp(1)


def test_the_moves_cap_uses_the_real_ues():
    dep, h = padded(1, 5, 3)
    p, params = Problem(dep=dep, h=h), jax.tree.map(jnp.float32, ASAParams())
    a0, key = jnp.zeros(9, jnp.int32), jax.random.key(2)
    got = search(key, p, a0, 12, params, k=16, max_iter=12, moves=0.3)[0]
    capped = params.replace(mut_scale=jnp.minimum(params.mut_scale, 0.3 / 5))  # 0.06 < 0.1
    q, costs = problem_probs(p, params.local_weight), problem_costs(p)
    want = search_with(key, q, costs, a0, 12, capped, 16, 12)[0]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_padded_ues_are_local_in_the_policy_decision():
    for seed in range(40):
        dep, h = padded(seed, 4, 2)
        net = fp.FeaturePolicy(rounds=1, width=8, hidden=8)
        params = fp.init_params(jax.random.key(seed), net, dep, h)
        raw = np.asarray(jnp.argmax(fp.logits_fn(net, params, dep, h), axis=-1))
        if np.any(raw[4:] != 0):  # an argmax that puts a padded UE on a MEC
            a = np.asarray(fp.act(net, params, dep, h))
            np.testing.assert_array_equal(a[4:], 0)
            np.testing.assert_array_equal(a[:4], raw[:4])
            return
    pytest.fail("no initialisation put a padded UE on a MEC")


def fixed_trainer(scn, **kw):
    cfg = TrainConfig(
        epochs=20,
        phi=10,
        batch=8,
        buffer=32,
        chunk=10,
        state="channel",
        incremental_sae=False,
        adaptive=False,
        **kw,
    )
    env = FixedDeployment(scn)
    sae_cfg = SAEConfig(latent=4)
    tr = make_trainer(cfg, env, make_agent(cfg, sae_cfg, env), sae_cfg)
    params = make_env(jax.random.key(1), scn, cfg, sae_cfg)
    st = tr.init(
        jax.random.key(0), init_sae(jax.random.key(2), sae_cfg, scn.n_ue * scn.n_mec), params
    )
    return tr, params, st


def test_exploration_reaches_every_option_and_the_latency_metric_is_the_policys():
    """explore_eps = 1 with an ASA that cannot move: the stored actions are the uniform random
    starts over all M + 1 options; the `latency` metric is still the policy's own decision."""
    from ojrs_jax.search.asa import ASAConfig

    scn = make_scenario(SystemConfig(n_ue=30, n_mec=3, seed=2))
    asa = ASAConfig(k=2, max_iter=1, t_sa0=1)
    tr, params, st0 = fixed_trainer(
        scn, explore_eps=1.0, asa=asa, asa_params=ASAParams(mut_scale=1e-9)
    )
    st, m = tr.run_chunk(st0, params)
    stored = np.asarray(st.buffer.a)[np.asarray(st.buffer.valid)]
    counts = np.bincount(stored.ravel(), minlength=4)
    assert stored.shape == (10, 30) and np.all(counts > 0.15 * stored.size), counts
    # the policy's decisions on the block's channels (the trainer draws them from the 2nd key)
    k_h = jax.random.split(st0.key, 5)[1]
    H = sample_channels(k_h, scn, 10)
    a = tr.decide(st0.policy, None, params, Problem(dep=_dep(scn), h=H))
    want = [float(latency(scn, H[i], a[i])) for i in range(10)]
    np.testing.assert_allclose(np.asarray(m["latency"]), want, rtol=1e-5)


def _dep(scn):
    from ojrs_jax.system.deployment import from_scenario

    return from_scenario(scn)


def test_a_rollout_switches_the_weights_at_the_change_epoch():
    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2))
    env = FixedDeployment(scn)
    params = make_params(scn, jnp.full((6,), 2.0), change_epoch=13)
    _, probs = env.rollout(jax.random.key(0), (), jnp.int32(10), params, 6)
    w = np.asarray(probs.dep.scn.weights)[:, 0]
    np.testing.assert_array_equal(w, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])  # epochs 10..15


def test_a_mobile_task_moves_and_renews_its_deployments():
    cfg = DeploymentConfig(kind="mobile", n_ue=(3, 8), n_max=8, n_mec=(1, 3), m_max=3, episode=5)
    env = DeploymentDistribution(cfg, SYS)
    assert env.iid is False and DeploymentDistribution(replace(cfg, kind="random"), SYS).iid
    tcfg = TrainConfig(
        epochs=60,
        phi=10,
        batch=8,
        buffer=32,
        chunk=60,
        arch="feature",
        state="deployment",
        change_epoch=0,
        incremental_sae=False,
        link_width=8,
        score_hidden=8,
    )
    tr = make_trainer(tcfg, env, make_agent(tcfg, SAEConfig(), env))
    _, m = tr.train(jax.random.key(3), env.default_params)
    assert len(set(np.asarray(m["n_ue"]).tolist())) > 1  # new deployments every 5 epochs
    # and within an episode the UEs walk: the problems of one block differ
    gen = env.init_gen(jax.random.key(4), env.default_params)
    _, probs = env.rollout(jax.random.key(5), gen, jnp.int32(0), env.default_params, 4)
    pos = np.asarray(probs.dep.scn.ue_pos)
    assert np.all(
        np.linalg.norm(np.diff(pos, axis=0), axis=-1)[:, : int(probs.dep.ue_mask[0].sum())] > 0
    )


def test_random_covers_the_real_options_of_a_padded_deployment():
    dep, _ = padded(3, 6, 2)
    dep = dep.replace(scn=dep.scn.replace(f_mec=jnp.full(4, 1e13)))  # no capacity limit
    a = np.asarray(
        jax.vmap(random_decision, (0, None))(jax.random.split(jax.random.key(0), 3000), dep)
    )
    assert np.all(a[:, 6:] == 0) and a.max() <= 2
    freq = np.bincount(a[:, :6].ravel(), minlength=3) / a[:, :6].size
    np.testing.assert_allclose(freq, 1 / 3, atol=0.03)


def test_the_certified_evaluation_remaps_mecs_and_reads_each_channel():
    dep, _ = padded(4, 5, 3)
    dep = dep.replace(mec_mask=jnp.asarray([True, False, True, True]))  # a gap in the MECs
    keys = jax.random.split(jax.random.key(5), 3)
    H = jax.vmap(lambda k: rayleigh(k, dep))(keys)
    deps = jax.tree.map(lambda x: jnp.broadcast_to(x, (3, *x.shape)), dep)
    rng = np.random.default_rng(0)
    A = rng.choice([0, 1, 3, 4], size=(3, 9))
    A[:, 5:] = 0
    cs = cases(Problem(dep=deps, h=H))
    np.testing.assert_array_equal(
        cs[0].decision(np.array([0, 1, 3, 4, 3, 0, 0, 0, 0])), [0, 1, 2, 3, 2]
    )
    got = certify(cs, {"x": A}, exact=False)["latency_x"]
    d = ref.dep_np(dep)
    want = np.mean([ref.latency_padded(d, np.asarray(H[i], np.float64), A[i]) for i in range(3)])
    assert got == pytest.approx(want, rel=1e-9)


def test_inputs_in_float32_and_the_one_metre_floor():
    with pytest.raises(ConfigError, match="ue_pos has values beyond float32's range"):
        make_deployment(
            SYS,
            ue_pos=[[-1e39, 0.0]],
            mec_pos=[[0.0, 0.0]],
            data_bits=1e6,
            cycles=1e9,
            weights=1.0,
            f_mec=5e10,
        )
    dep = make_deployment(
        SYS,
        ue_pos=[[10.3, 10.4], [40.0, 10.0]],
        mec_pos=[[10.0, 10.0]],
        data_bits=1e6,
        cycles=1e9,
        weights=1.0,
        f_mec=5e10,
    )
    assert float(dep.gain[0, 0]) == pytest.approx(SYS.beta0, rel=1e-6)  # 0.5 m: floored to 1 m
    assert float(dep.gain[1, 0]) == pytest.approx(SYS.beta0 / 900.0, rel=1e-5)


def small_scheduler(trained_on: DeploymentConfig):
    """A scheduler of an untrained small feature policy that says what it was trained on."""
    dep, h = padded(6, 4, 2)
    net = fp.FeaturePolicy(rounds=1, width=8, hidden=8)
    params = fp.init_params(jax.random.key(0), net, dep, h)
    return make_any_scheduler(net, params, SYS, polish=0, trained_on=trained_on)


def test_a_task_size_outside_the_training_range_warns():
    sched = small_scheduler(replace(PAD, n_ue=(2, 9), n_mec=(1, 4)))
    given = sched.deployment(
        gain=np.full((4, 2), 1e-6),
        data_bits=[8e5, 8e5, 8e5, 1.6e7],
        cycles=1e9,
        weights=1.0,
        f_mec=5e10,
    )
    with pytest.warns(UserWarning, match=r"D \(8e\+05\.\.1\.6e\+07\) lies outside"):
        sched.decide(given, np.full((4, 2), 2e-6))


def test_a_killed_run_is_not_started_again_over_its_files(tiny_run_dir, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(tiny_run_dir, d)
    (d / "summary.json").unlink()
    (d / "model.msgpack").unlink()
    before = (d / "checkpoint" / "state.msgpack").read_bytes()
    p = subprocess.run(
        [sys.executable, "-m", "ojrs_jax.cli.train", *TINY_CLI_ARGS, f"hydra.run.dir={d}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 2 and "already holds a run (config.yaml)" in p.stderr
    assert (d / "checkpoint" / "state.msgpack").read_bytes() == before


def test_non_finite_parameters_alone_stop_the_run(tmp_path):
    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2))
    tr, params, st = fixed_trainer(scn)

    def poisoned(state, env):
        new, m = tr.run_chunk(state, env)
        bad = jax.tree.map(lambda x: x * jnp.nan, new.policy)
        return new.replace(policy=bad), m  # the metrics stay finite

    with pytest.raises(FloatingPointError, match="non-finite loss or parameters at epoch 9"):
        run_chunks(poisoned, st, params, 20, 10, checkpoint_dir=tmp_path)


def test_decide_writes_nothing_on_a_non_finite_latency(tiny_run_dir, tmp_path, monkeypatch, capsys):
    from ojrs_jax.cli.decide import main
    from ojrs_jax.run.scheduler import Scheduler

    np.savez(tmp_path / "h.npz", h=np.full((2, 6, 2), 1e-6))
    real = Scheduler.allocate

    def nan_latency(self, *args):  # one problem of the batch non-finite, the other finite
        out = real(self, *args)
        return {**out, "latency": out["latency"] * np.array([1.0, np.nan])}

    monkeypatch.setattr(Scheduler, "allocate", nan_latency)
    out = tmp_path / "o.npz"
    argv = ["--run", str(tiny_run_dir), "--channels", str(tmp_path / "h.npz"), "--out", str(out)]
    assert main(argv) == 2
    assert "non-finite latency" in capsys.readouterr().err and not out.exists()


def test_a_relative_out_into_the_run_is_refused(tiny_run_dir, tmp_path, monkeypatch, capsys):
    from ojrs_jax.cli.decide import main

    shutil.copytree(tiny_run_dir, tmp_path / "copy")
    np.savez(tmp_path / "h.npz", h=np.full((2, 6, 2), 1e-6))
    before = (tmp_path / "copy" / "model.msgpack").read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["--run", "copy", "--channels", "h.npz", "--out", "copy/model.msgpack"]) == 2
    assert "would replace a file of the run" in capsys.readouterr().err
    assert (tmp_path / "copy" / "model.msgpack").read_bytes() == before
    assert os.getcwd() == str(tmp_path)


# --- pins of the second mutation run (tests/mutation_any.py) ----------------------------------


def stacked(*deps):
    return jax.tree.map(lambda *x: jnp.stack(x), *deps)


def test_a_batch_of_deployments_is_decided_each_with_its_own():
    deps_h = [padded(20 + i, n, m) for i, (n, m) in enumerate([(4, 2), (7, 3), (5, 1)])]
    net = fp.FeaturePolicy(rounds=1, width=8, hidden=8)
    params = fp.init_params(jax.random.key(3), net, *deps_h[0])
    sched = make_any_scheduler(net, params, SYS, polish=1)
    deps, H = stacked(*[d for d, _ in deps_h]), jnp.stack([h for _, h in deps_h])
    got = sched.allocate(deps, H)
    for i, (d, h) in enumerate(deps_h):
        one = sched.allocate(d, h)
        np.testing.assert_array_equal(got["a"][i], one["a"])
        assert got["latency"][i] == pytest.approx(float(one["latency"]), rel=1e-5)


def test_random_deployments_place_m_mecs_on_the_grid_of_m():
    cfg = replace(PAD, mec_layout="grid", area=(100.0, 100.0))
    for m in range(1, cfg.m_max + 1):
        dep = random_deployment(jax.random.key(m), cfg, SYS, 5, m)
        cols = math.ceil(math.sqrt(m))
        rows = math.ceil(m / cols)
        cells = [((c + 0.5) / cols, (r + 0.5) / rows) for r in range(rows) for c in range(cols)]
        np.testing.assert_allclose(
            np.asarray(dep.scn.mec_pos)[:m], 100.0 * np.asarray(cells[:m]), rtol=1e-5
        )
        np.testing.assert_array_equal(np.asarray(dep.mec_mask), np.arange(cfg.m_max) < m)


def test_the_certified_evaluation_scores_each_problem_on_its_own_deployment():
    deps_h = [padded(30 + i, n, m) for i, (n, m) in enumerate([(4, 2), (8, 3), (6, 2)])]
    deps, H = stacked(*[d for d, _ in deps_h]), jnp.stack([h for _, h in deps_h])
    rng = np.random.default_rng(2)
    A = np.zeros((3, 9), int)
    for i, (d, _) in enumerate(deps_h):
        n, m = int(d.ue_mask.sum()), int(d.mec_mask.sum())
        A[i, :n] = rng.integers(0, m + 1, size=n)
    got = certify(cases(Problem(dep=deps, h=H)), {"x": A}, exact=False)["latency_x"]
    want = np.mean(
        [
            ref.latency_padded(ref.dep_np(d), np.asarray(h, np.float64), A[i])
            for i, (d, h) in enumerate(deps_h)
        ]
    )
    assert got == pytest.approx(want, rel=1e-9)


def test_a_model_with_one_nan_entry_is_refused(tiny_run_dir, tmp_path):
    from flax import serialization

    from ojrs_jax.run.scheduler import load_run

    d = tmp_path / "run"
    shutil.copytree(tiny_run_dir, d)
    model = serialization.msgpack_restore((d / "model.msgpack").read_bytes())
    leaves, treedef = jax.tree.flatten(model["policy"])
    first = np.array(leaves[0], copy=True)
    first.flat[0] = np.nan  # one entry of one array
    model["policy"] = jax.tree.unflatten(treedef, [first, *leaves[1:]])
    (d / "model.msgpack").write_bytes(serialization.msgpack_serialize(model))
    with pytest.raises(ConfigError, match="NaN or infinite parameters"):
        load_run(d)


def test_a_policy_trained_on_one_fixed_deployment_warns_of_no_range():
    """A feature policy trained on the fixed deployment has no ranges of N, M, D, ... to warn
    about; the defaults of a `random` distribution (N in 5..100) are not its range."""
    sched = small_scheduler(DeploymentConfig())  # kind "fixed"
    given = sched.deployment(
        gain=np.full((3, 2), 1e-6), data_bits=8e5, cycles=1e9, weights=1.0, f_mec=5e10
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = sched.decide(given, np.full((3, 2), 2e-6))
    assert a.shape == (3,)


def test_an_out_into_the_run_is_refused_however_the_paths_are_written(
    tiny_run_dir, tmp_path, monkeypatch, capsys
):
    """--run absolute, --out relative to the working directory: the same file of the run."""
    from ojrs_jax.cli.decide import main

    run = tmp_path / "copy"
    shutil.copytree(tiny_run_dir, run)
    np.savez(tmp_path / "h.npz", h=np.full((2, 6, 2), 1e-6))
    before = (run / "model.msgpack").read_bytes()
    monkeypatch.chdir(tmp_path)
    argv = ["--run", str(run), "--channels", "h.npz", "--out", "./copy/model.msgpack"]
    assert main(argv) == 2
    assert "would replace a file of the run" in capsys.readouterr().err
    assert (run / "model.msgpack").read_bytes() == before


def test_an_encoder_that_does_not_fit_the_run_is_refused(tiny_run_dir, tmp_path):
    from flax import serialization

    from ojrs_jax.run.scheduler import load_run

    d = tmp_path / "run"
    shutil.copytree(tiny_run_dir, d)
    model = serialization.msgpack_restore((d / "model.msgpack").read_bytes())
    assert model["encoder"], "the tiny run keeps its 2r-SAE"
    layer = sorted(model["encoder"])[0]
    model["encoder"][layer]["kernel"] = model["encoder"][layer]["kernel"][:, :-1]
    (d / "model.msgpack").write_bytes(serialization.msgpack_serialize(model))
    with pytest.raises(ConfigError, match="does not fit the run's N = 6, M = 2"):
        load_run(d)


def test_refine_is_asa_with_about_five_moves_per_neighbour():
    """The scheduler's `refine` R: R iterations of ASA (K = 128, mutation scale capped at 5 / N,
    key 0) from the policy's decision, as its docstring says."""
    from ojrs_jax.run.scheduler import _asa_params

    cfg = replace(PAD, n_ue=(60, 60), n_max=60, n_mec=(3, 3), m_max=4)
    dep = random_deployment(jax.random.key(11), cfg, SYS, 60, 3)
    h = rayleigh(jax.random.key(12), dep)
    net = fp.FeaturePolicy(rounds=1, width=8, hidden=8)
    params = fp.init_params(jax.random.key(0), net, dep, h)
    got = make_any_scheduler(net, params, SYS, refine=6, polish=0).decide(dep, h)
    a0 = fp.act(net, params, dep, h)
    p = Problem(dep=dep, h=h)
    want, _, _ = search(jax.random.key(0), p, a0, 6, _asa_params(), k=128, max_iter=6, moves=5.0)
    np.testing.assert_array_equal(got, np.asarray(want))
    uncapped, _, _ = search(
        jax.random.key(0), p, a0, 6, _asa_params(), k=128, max_iter=6, moves=0.0
    )
    assert not np.array_equal(np.asarray(want), np.asarray(uncapped))  # the cap matters here


def test_init_from_refuses_a_policy_with_nan_parameters(tiny_run_dir, tmp_path):
    from flax import serialization

    from ojrs_jax.run.rundir import read_policy

    d = tmp_path / "run"
    shutil.copytree(tiny_run_dir, d)
    assert read_policy(d)  # the finished run's policy starts another
    model = serialization.msgpack_restore((d / "model.msgpack").read_bytes())
    model["policy"] = jax.tree.map(lambda x: np.full_like(x, np.nan), model["policy"])
    (d / "model.msgpack").write_bytes(serialization.msgpack_serialize(model))
    with pytest.raises(ConfigError, match="holds no finite policy parameters"):
        read_policy(d)


def test_load_run_takes_the_polish_asked_for():
    """The shipped model E decides with the number of best-response passes its caller asks."""
    from ojrs_jax.run.scheduler import load_run

    run = Path(__file__).parents[1] / "benchmarks" / "results" / "any_run_e"
    assert load_run(run).polish == 1  # the default
    for polish in (0, 3):
        assert load_run(run, polish=polish).polish == polish
