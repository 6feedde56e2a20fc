"""Any deployment: samplers' statistics, masked P2 and ASA against the unmasked ones, the feature
policy's equivariance and padding invariance, the scheduler API and a tiny training run."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from conftest import TINY_ANY_ARGS

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.run.inputs import make_deployment
from ojrs_jax.run.scheduler import make_any_scheduler
from ojrs_jax.search.asa import ASAParams, asa_search, search
from ojrs_jax.search.baselines import greedy
from ojrs_jax.system.deployment import (
    DeploymentConfig,
    Problem,
    bessel_j0,
    from_scenario,
    masked_allocation,
    masked_latency,
    mobile_trajectory,
    random_deployment,
    rayleigh,
    unpad,
)
from ojrs_jax.system.p2 import latency, solve_p2_closed_form
from ojrs_jax.system.scenario import ConfigError, SystemConfig, make_scenario

SYS = SystemConfig(noise=2e-7)
CFG = DeploymentConfig(kind="random", n_ue=(3, 12), n_max=12, n_mec=(1, 4), m_max=4)


def padded(seed, n=None, m=None, cfg=CFG):
    k_d, k_h = jax.random.split(jax.random.key(seed))
    dep = random_deployment(k_d, cfg, SYS, n, m)
    return dep, rayleigh(k_h, dep)


def test_bessel_j0_and_rho():
    x = np.linspace(0.0, 25.0, 51)
    np.testing.assert_allclose(
        np.asarray(bessel_j0(jnp.asarray(x))), scipy.special.j0(x), atol=2e-6
    )
    cfg = DeploymentConfig(kind="mobile", speed=3.0, epoch_s=0.02, carrier_hz=2.4e9)
    f_d = 3.0 * 2.4e9 / 299_792_458.0
    assert cfg.rho == pytest.approx(scipy.special.j0(2 * np.pi * f_d * 0.02), abs=1e-7)


def test_random_sampler_ranges_and_masks():
    keys = jax.random.split(jax.random.key(1), 400)
    deps = jax.jit(jax.vmap(lambda k: random_deployment(k, CFG, SYS)))(keys)
    n = np.asarray(deps.ue_mask.sum(1))
    m = np.asarray(deps.mec_mask.sum(1))
    assert set(n) == set(range(3, 13)) and set(m) == set(range(1, 5))
    # masks are prefixes
    assert np.all(np.asarray(deps.ue_mask) == (np.arange(12)[None] < n[:, None]))
    D, w = np.asarray(deps.scn.data_bits), np.asarray(deps.scn.weights)
    assert D.min() >= 4e5 * 0.999 and D.max() <= 1.6e6 * 1.001
    assert 0.5 <= w.min() and w.max() <= 1.5 and abs(w.mean() - 1.0) < 0.02
    # log-uniform D: the mean of log D is the midpoint of the log range
    assert abs(np.log(D).mean() - 0.5 * np.log(4e5 * 1.6e6)) < 0.03


def test_mobile_gauss_markov_correlation_and_speed():
    cfg = DeploymentConfig(
        kind="mobile", n_ue=(200, 200), n_max=200, n_mec=(10, 10), m_max=10, speed=5.0, epoch_s=0.01
    )
    deps, H = jax.jit(lambda k: mobile_trajectory(k, cfg, SYS, 40))(jax.random.key(3))
    l = np.asarray(H / deps.gain)  # fading power |l|^2, (E, N, M)
    assert abs(l.mean() - 1.0) < 0.03  # stationary Exp(1)
    x, y = l[:-1].ravel(), l[1:].ravel()
    # for a Gauss-Markov complex gain, corr(|l_t|^2, |l_t+1|^2) = rho^2
    assert np.corrcoef(x, y)[0, 1] == pytest.approx(cfg.rho**2, abs=0.02)
    step = np.linalg.norm(np.diff(np.asarray(deps.scn.ue_pos), axis=0), axis=-1)
    assert np.median(step) == pytest.approx(5.0 * 0.01, rel=1e-3)
    assert np.all(step <= 5.0 * 0.01 * (1 + 1e-3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_p2_matches_unmasked_on_real_part(seed):
    dep, h = padded(seed)
    scn, h_sub = unpad(dep, h)
    n, m = scn.n_ue, scn.n_mec
    a_sub = jax.random.randint(jax.random.key(seed + 9), (n,), 0, m + 1)
    a = jnp.zeros(dep.n_max, jnp.int32).at[:n].set(a_sub)
    ref = latency(scn, jnp.asarray(h_sub), a_sub)
    assert float(masked_latency(dep, h, a)) == pytest.approx(float(ref), rel=1e-5)
    # padded UEs "choosing" any option, even a padded MEC, change nothing
    junk = a.at[n:].set(dep.m_max)
    assert float(masked_latency(dep, h, junk)) == pytest.approx(float(ref), rel=1e-5)
    alloc, ref_alloc = masked_allocation(dep, h, a), solve_p2_closed_form(scn, h_sub, a_sub)
    np.testing.assert_allclose(alloc["f"][:n], ref_alloc.f, rtol=1e-5)
    np.testing.assert_allclose(alloc["p"][:n], ref_alloc.p, rtol=1e-5)
    assert np.all(np.asarray(alloc["f"][n:]) == 0)


def test_masked_asa_equals_asa_unpadded_and_respects_masks():
    params = ASAParams()
    scn = make_scenario(replace(SYS, n_ue=10, n_mec=3, layout="grid"))
    dep = from_scenario(scn)
    h = rayleigh(jax.random.key(4), dep)
    a0 = jnp.zeros(10, jnp.int32)
    a1, l1, _ = jax.jit(
        lambda: asa_search(jax.random.key(5), scn, h, a0, 15, params, k=16, max_iter=20)
    )()
    masked = Problem(dep=dep.replace(masked=True), h=h)  # the masked computation, all real
    a2, l2, _ = jax.jit(
        lambda: search(jax.random.key(5), masked, a0, 15, params, k=16, max_iter=20)
    )()
    np.testing.assert_array_equal(a1, a2)
    assert float(l1) == float(l2)

    @jax.jit
    def run(seed):
        dep, h = padded(seed + 20, n=5, m=2)
        g = greedy(dep)
        p = Problem(dep=dep, h=h)
        a, l, _ = search(jax.random.key(seed), p, g, 30, params, k=32, max_iter=30)
        return dep, h, g, a, l

    for seed in range(4):
        dep, h, g, a, l = run(seed)
        a = np.asarray(a)
        assert np.all(a[5:] == 0) and a.max() <= 2
        scn_s, h_s = unpad(dep, h)
        assert float(l) == pytest.approx(float(latency(scn_s, jnp.asarray(h_s), a[:5])), rel=1e-5)
        assert float(l) <= float(masked_latency(dep, h, g)) + 1e-6


def _net_and_params(dep, h):
    net = fp.FeaturePolicy(rounds=2, width=8, hidden=8)
    return net, fp.init_params(jax.random.key(0), net, dep, h)


def _logits(net, params, dep, h):
    return np.asarray(fp.logits_fn(net, params, dep, h))


def test_policy_equivariant_over_ues_and_mecs():
    dep, h = padded(7, n=12, m=4)
    net, params = _net_and_params(dep, h)
    base = _logits(net, params, dep, h)
    pu = np.random.default_rng(0).permutation(12)
    s = dep.scn
    dep_u = dep.replace(
        scn=s.replace(
            ue_pos=s.ue_pos[pu],
            data_bits=s.data_bits[pu],
            cycles=s.cycles[pu],
            weights=s.weights[pu],
        ),
        gain=dep.gain[pu],
        ue_mask=dep.ue_mask[pu],
    )
    np.testing.assert_allclose(_logits(net, params, dep_u, h[pu]), base[pu], rtol=1e-4, atol=1e-4)
    pm = np.array([2, 0, 3, 1])
    dep_m = dep.replace(
        scn=s.replace(mec_pos=s.mec_pos[pm], f_mec=s.f_mec[pm]),
        gain=dep.gain[:, pm],
        mec_mask=dep.mec_mask[pm],
    )
    got = _logits(net, params, dep_m, h[:, pm])
    np.testing.assert_allclose(got, base[:, np.r_[0, pm + 1]], rtol=1e-4, atol=1e-4)
    # a different scenario really changes the output (the test could fail)
    assert not np.allclose(_logits(net, params, dep_u, h[pu]), base, atol=1e-3)


def test_padding_does_not_change_real_scores():
    dep, h = padded(8, n=6, m=2)  # padded to 12 x 4
    net, params = _net_and_params(dep, h)
    full = _logits(net, params, dep, h)
    dep_s = dep.replace(
        scn=dep.scn.replace(
            **{k: getattr(dep.scn, k)[:6] for k in ("ue_pos", "data_bits", "cycles", "weights")},
            mec_pos=dep.scn.mec_pos[:2],
            f_mec=dep.scn.f_mec[:2],
        ),
        gain=dep.gain[:6, :2],
        ue_mask=dep.ue_mask[:6],
        mec_mask=dep.mec_mask[:2],
    )
    unpadded = _logits(net, params, dep_s, h[:6, :2])
    np.testing.assert_allclose(full[:6, :3], unpadded, rtol=1e-4, atol=1e-4)
    assert np.all(full[:, 3:] <= -1e8)  # padded MECs are never chosen
    a = np.asarray(fp.act(net, params, dep, h))
    assert np.all(a[6:] == 0) and a.max() <= 2


def test_scheduler_api_checks_and_batch():
    dep, h = padded(9, n=12, m=4)
    net, params = _net_and_params(dep, h)
    sched = make_any_scheduler(net, params, SYS, polish=0)
    s = dep.scn
    kw = dict(
        ue_pos=s.ue_pos,
        mec_pos=s.mec_pos,
        data_bits=s.data_bits,
        cycles=s.cycles,
        weights=s.weights,
        f_mec=s.f_mec,
    )
    out = sched.allocate(kw, np.stack([h, 2 * h]))
    assert out["a"].shape == (2, 12) and out["latency"].shape == (2,)
    np.testing.assert_array_equal(sched.decide(kw, h), out["a"][0])
    with pytest.raises(ConfigError, match="weights must be positive"):
        sched.deployment(**{**kw, "weights": -np.ones(12)})
    with pytest.raises(ConfigError, match="f_mec must have length M = 4"):
        sched.deployment(**{**kw, "f_mec": np.ones(3)})
    with pytest.raises(ConfigError, match="either gain"):
        sched.deployment(**{**kw, "gain": np.ones((12, 4))})
    with pytest.raises(ConfigError, match=r"channels h have \(N, M\)"):
        sched.allocate(kw, h[:, :3])
    g = make_deployment(SYS, gain=dep.gain, data_bits=8e5, cycles=1e9, weights=1.0, f_mec=5e10)
    assert sched.decide(g, h).shape == (12,)
    refined = make_any_scheduler(net, params, SYS, refine=10, polish=0).allocate(kw, h)
    assert refined["latency"] <= out["latency"][0] * (1 + 1e-6)


TINY_ANY = ["deployment=random", "train=any", *TINY_ANY_ARGS]  # for ojrs-train


def test_train_any_run_tiny(tmp_path):
    from ojrs_jax.app.compose import train_from_config
    from ojrs_jax.run.scheduler import load_run

    s = train_from_config(TINY_ANY, tmp_path)
    assert s["epochs"] == 40 and 0 < s["search_ratio_last500"] <= 1.0 + 1e-6
    e = s["eval"]
    assert e["draws"] == 4 and e["certified"] == 4
    assert 0 < e["nrr_policy_min"] <= e["nrr_policy"] <= 1 + 1e-6
    sched = load_run(tmp_path)
    assert sched.any_deployment and sched.scn is None and sched.polish == 1
    dep, h = padded(10, n=12, m=4)
    with pytest.warns(UserWarning) as caught:
        assert np.asarray(sched.decide(dep, h)).shape == (12,)
    said = sorted(str(w.message).split(" lies")[0] for w in caught)
    assert said == ["the deployment's M (4)", "the deployment's N (12)"]
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "nothing")
    # ojrs-decide --deployment: a batch of channels for one deployment given by gains
    import json

    from ojrs_jax.cli.decide import main as decide_main

    s_ = dep.scn
    (tmp_path / "dep.json").write_text(
        json.dumps(
            {
                "gain": np.asarray(dep.gain).tolist(),
                "data_bits": np.asarray(s_.data_bits).tolist(),
                "cycles": 1e9,
                "weights": 1.0,
                "f_mec": np.asarray(s_.f_mec).tolist(),
            }
        )
    )
    np.savez(tmp_path / "h.npz", h=np.stack([h, h]))
    args = [
        "--run",
        str(tmp_path),
        "--deployment",
        str(tmp_path / "dep.json"),
        "--channels",
        str(tmp_path / "h.npz"),
    ]
    assert decide_main([*args, "--out", str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as z:
        assert z["a"].shape == (2, 12) and np.all(np.isfinite(z["latency"]))
    assert decide_main([*args, "--out", str(tmp_path / "o0.npz"), "--polish", "0"]) == 0
    with np.load(tmp_path / "o.npz") as z, np.load(tmp_path / "o0.npz") as z0:
        assert np.all(z["latency"] <= z0["latency"] * (1 + 1e-6))  # the default pass never worsens
    assert decide_main([*args, "--out", str(tmp_path / "o1.npz"), "--polish", "-1"]) == 2
    assert not (tmp_path / "o1.npz").exists()
    np.savez(tmp_path / "h.npz", h=np.stack([h, h])[:, :, :3])
    assert decide_main([*args, "--out", str(tmp_path / "o2.npz")]) == 2
    assert not (tmp_path / "o2.npz").exists()
    # the per-deployment scheduler beside the model (benchmarks/eval_any.py --tuned): a tiny
    # `ojrs-train` on draw 1 of cell (5, 2), both certified on 3 channels of that deployment
    from ojrs_jax.experiments.tuned_beside import cell_deployment, tuned_beside

    dcfg = DeploymentConfig(kind="random", n_ue=(2, 6), n_max=6, n_mec=(1, 2), m_max=2)
    tiny = [
        "train.epochs=20",
        "train.updates=2",
        "train.batch=8",
        "train.buffer=32",
        "train.ue_hidden=[8]",
        "train.ue_embed=4",
        "asa.k=8",
        "asa.t_sa0=3",
    ]
    r = tuned_beside(sched, dcfg, 5, 2, 7, 1, 3, tiny, asa_iter=5)
    assert (r["n_ue"], r["n_mec"], r["epochs"], r["channels"], r["certified"]) == (5, 2, 20, 3, 3)
    for name in ("tuned_policy", "any_policy", "greedy", "asa"):
        assert 0 < r[f"nrr_{name}_min"] <= r[f"nrr_{name}"] <= 1 + 1e-6, name
        assert r[f"latency_{name}"] >= r["latency_exact"] * (1 - 1e-6), name
    dep = cell_deployment(sched, dcfg, 5, 2, 7, 1)
    assert dep.gain.shape == (5, 2) and bool(dep.ue_mask.all()) and bool(dep.mec_mask.all())
    assert not np.allclose(dep.gain, cell_deployment(sched, dcfg, 5, 2, 7, 0).gain)
    # a mobile trajectory scored without retraining, every 4th of 12 epochs certified
    from ojrs_jax.experiments.any_grid import eval_trajectory

    mob = replace(dcfg, speed=20.0, epoch_s=0.05)
    tr = eval_trajectory(sched, mob, 5, 2, 12, 3, every=4, polish=1)
    assert (tr["samples"], tr["certified"], tr["epochs"]) == (3, 3, 12)
    assert 0 < tr["nrr_policy_min"] <= tr["nrr_policy"] <= 1 + 1e-6
    assert tr["nrr_policy"] - 1e-9 <= tr["nrr_policy_br"] <= 1 + 1e-6  # the pass never worsens
    assert 0 < tr["mean_displacement_m"] <= tr["mean_path_m"] <= 20.0 * 0.05 * 11 + 1e-3


@pytest.mark.parametrize("kind", ["fixed", "mobile"])
def test_any_trainer_vmapped_seeds_equal_single_runs(kind):
    """Algorithm 3 over a fixed or a moving deployment: `train` vmapped over two seeds gives each
    seed's own run (the seed axis adds nothing), the seeds differ, and the metrics are finite."""
    from ojrs_jax.agent.agents import make_agent
    from ojrs_jax.agent.config import TrainConfig
    from ojrs_jax.agent.trainer import make_trainer
    from ojrs_jax.run.build import make_environment
    from ojrs_jax.sae.model import SAEConfig

    sys = SystemConfig(noise=2e-7, n_ue=5, n_mec=2, seed=2)
    n_ue = (5, 5) if kind == "fixed" else (4, 5)
    dcfg = DeploymentConfig(kind=kind, n_ue=n_ue, n_max=5, n_mec=(2, 2), m_max=2)
    cfg = TrainConfig.from_mapping(
        {
            "epochs": 20,
            "phi": 5,
            "batch": 8,
            "updates": 1,
            "buffer": 16,
            "link_width": 8,
            "score_hidden": 8,
            "chunk": 20,
            "arch": "feature",
            "state": "deployment",
            "change_epoch": 0,
        },
        {"k": 8, "max_iter": 6, "t_sa0": 3},
    )
    env = make_environment(dcfg, sys)
    tr = make_trainer(cfg, env, make_agent(cfg, SAEConfig(), env))
    params = env.default_params
    keys = jax.random.split(jax.random.key(4), 2)
    st_v, m_v = jax.vmap(tr.train, (0, None))(keys, params)
    for i in range(2):
        st_i, m_i = tr.train(keys[i], params)
        for name in m_i:
            np.testing.assert_allclose(
                np.asarray(m_v[name][i]),
                np.asarray(m_i[name]),
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{kind}: metric {name} of seed {i}",
            )
        assert int(st_v.epoch[i]) == int(st_i.epoch) == 20
    assert all(np.all(np.isfinite(np.asarray(v))) for v in m_v.values())
    first = jax.tree.leaves(st_v.policy)[0]
    assert not np.allclose(np.asarray(first[0]), np.asarray(first[1]))  # seeds differ


def test_train_any_refuses_a_run_directory_in_use(tmp_path):
    """`ojrs-train-any` takes the run directory's lock like `ojrs-train`: while another writer
    holds it, the job stops before it computes or writes anything."""
    from ojrs_jax.app.compose import train_from_config
    from ojrs_jax.run.rundir import writing

    with writing(tmp_path):
        with pytest.raises(ConfigError, match="is in use by another process"):
            train_from_config(TINY_ANY, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_polished_scheduler_is_best_response_on_the_real_part(seed):
    """`polish` passes on a padded deployment act on the real UEs and MECs only: the same
    decisions as `best_response` on the unpadded sub-problem from the policy's decision, never
    a padded MEC, padded UEs local, and L no higher than the policy's."""
    from ojrs_jax.search.asa import best_response
    from ojrs_jax.system.p2 import option_costs

    dep, h = padded(seed, n=seed - 13, m=seed - 20)  # N = 8..10 of 12, M = 1..3 of 4
    assert not bool(dep.ue_mask.all()) and not bool(dep.mec_mask.all())
    net, params = _net_and_params(dep, h)
    plain = make_any_scheduler(net, params, SYS, polish=0).allocate(dep, h)
    polished = make_any_scheduler(net, params, SYS, polish=2).allocate(dep, h)
    ue = np.asarray(dep.ue_mask)
    mec_idx = np.flatnonzero(np.asarray(dep.mec_mask))
    assert np.all(polished["a"][~ue] == 0)
    on = polished["a"][polished["a"] > 0] - 1
    assert np.all(np.isin(on, mec_idx))
    assert polished["latency"] <= plain["latency"] * (1 + 1e-6)
    scn, h_real = unpad(dep, h)
    to_real = {0: 0, **{int(j) + 1: k + 1 for k, j in enumerate(mec_idx)}}
    a0 = np.array([to_real[int(x)] for x in plain["a"][ue]])
    want = np.asarray(best_response(option_costs(scn, jnp.asarray(h_real)), jnp.asarray(a0), 2))
    np.testing.assert_array_equal([to_real[int(x)] for x in polished["a"][ue]], want)
