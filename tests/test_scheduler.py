"""The deciding path (src/ojrs_jax/scheduler.py, policy.inference_fn): same decisions as the
trainer's, folded per-UE network equal to the flax module, FLOP count from the traced program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import decide_channels, fixed_trainer

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import (
    PerUEPolicy,
    PolicyNet,
    inference_flops,
    inference_fn,
    init_policy,
)
from ojrs_jax.agent.trainer import make_env
from ojrs_jax.run.scheduler import make_scheduler
from ojrs_jax.sae.model import SAEConfig, init_sae
from ojrs_jax.system.p2 import solve_p2_closed_form
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels


@pytest.mark.parametrize(
    "net",
    [
        PerUEPolicy(n_ue=7, n_mec=3, hidden=(64, 64), embed=32),
        PerUEPolicy(n_ue=5, n_mec=2, hidden=(16,), embed=4),
        PerUEPolicy(n_ue=5, n_mec=1, hidden=(), embed=8),
        PolicyNet(n_ue=4, n_mec=2, hidden=(12, 10)),
    ],
    ids=["per_ue_2", "per_ue_1", "per_ue_0", "mlp"],
)
def test_inference_fn_equals_module(net):
    dim = net.n_ue * net.n_mec
    params = init_policy(jax.random.key(0), net, dim, local_bias=0.5)
    # untrained weights are small: scale them so every unit and branch matters
    params = jax.tree.map(lambda x: 3.0 * x, params)
    x = jnp.exp(jax.random.normal(jax.random.key(1), (9, dim)))
    want = np.asarray(net.apply(params, x))
    got = np.asarray(jax.jit(inference_fn(net, params))(x))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(inference_fn(net, params)(x[0])), want[0], atol=2e-5)


def _dot_flops(fn, x) -> int:
    """2 x multiply-adds of every dot_general in the traced program of one input."""
    total = 0
    for eqn in jax.make_jaxpr(fn)(x).jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            out = eqn.outvars[0].aval.shape
            total += 2 * int(np.prod(out)) * int(np.prod([lhs[d] for d in lc]))
    return total


@pytest.mark.parametrize(
    "net",
    [PerUEPolicy(n_ue=30, n_mec=2, hidden=(64, 64), embed=32), PolicyNet(30, 2, (120, 80))],
    ids=["per_ue", "mlp"],
)
def test_inference_flops_counts_the_traced_products(net, monkeypatch):
    # the narrow first-layer products run as fused multiply-adds (`policy._narrow`); counted
    # here as the matrix products they compute
    import ojrs_jax.agent.policy as policy_mod

    dim = net.n_ue * net.n_mec
    params = init_policy(jax.random.key(0), net, dim)
    x = jnp.ones((dim,), jnp.float32)
    monkeypatch.setattr(policy_mod, "_narrow", lambda a, w: a @ w)
    assert inference_flops(net, params) == _dot_flops(inference_fn(net, params), x)


@pytest.mark.parametrize("k", [1, 4, 8, 9])
def test_narrow_product_equals_matmul(k):
    from ojrs_jax.agent.policy import _narrow

    x = jax.random.normal(jax.random.key(k), (3, 5, k))
    w = jax.random.normal(jax.random.key(k + 1), (k, 7))
    want = np.einsum("abk,kh->abh", np.asarray(x, np.float64), np.asarray(w, np.float64))
    np.testing.assert_allclose(np.asarray(_narrow(x, w)), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "train_kw,sae_kw",
    [
        ({"state": "channel", "arch": "per_ue", "ue_hidden": (16, 16), "ue_embed": 8}, {}),
        ({"state": "sae", "arch": "mlp", "hidden": (20,)}, {"latent": 6, "preprocess": "log"}),
        ({"state": "channel", "arch": "mlp", "hidden": (20,)}, {"preprocess": "linear"}),
    ],
    ids=["per_ue", "sae_mlp", "channel_mlp"],
)
def test_scheduler_matches_trainer_decide(train_kw, sae_kw):
    """Decisions and allocations equal the trainer's `decide` followed by the P2 closed form."""
    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2, seed=3))
    cfg = TrainConfig(epochs=10, phi=5, batch=8, buffer=16, **train_kw)
    sae_cfg = SAEConfig.from_mapping({"latent": 8, **sae_kw})
    trainer = fixed_trainer(cfg, sae_cfg, scn)
    sae_params = init_sae(jax.random.key(1), sae_cfg, scn.n_ue * scn.n_mec)
    st = trainer.init(jax.random.key(2), sae_params)
    policy = jax.tree.map(lambda x: 5.0 * x, st.policy)  # away from ties at initialisation

    env = make_env(jax.random.key(3), scn, cfg, sae_cfg)
    H = sample_channels(jax.random.key(4), scn, 64)
    a_want = np.asarray(decide_channels(trainer, policy, st.sae.online, env, H))
    sched = make_scheduler(scn, cfg, sae_cfg, policy, st.sae.online)
    out = sched.allocate(np.asarray(H))
    np.testing.assert_array_equal(out["a"], a_want)
    assert len(set(map(tuple, a_want))) > 1  # the policy reacts to the channel
    for b in (0, 17, 63):
        alloc = solve_p2_closed_form(scn, H[b], jnp.asarray(a_want[b]))
        np.testing.assert_allclose(out["latency"][b], float(alloc.latency), rtol=1e-6)
        np.testing.assert_allclose(out["f"][b], np.asarray(alloc.f), rtol=1e-6)
        np.testing.assert_allclose(out["p"][b], np.asarray(alloc.p), rtol=1e-6)
    np.testing.assert_array_equal(sched.decide(np.asarray(H[5])), a_want[5])


SPLIT = """
import sys, numpy as np, jax, ojrs_jax
assert len(jax.local_devices()) == 2
sched = ojrs_jax.load_run(sys.argv[1])
with np.load(sys.argv[2]) as z:
    h = z["h"]
out = sched.allocate(h)  # 5 channels: padded to 6, split over the 2 devices, trimmed
np.savez(sys.argv[3], **out)
"""


def test_batch_split_over_devices_gives_the_same_decisions(tiny_run_dir, tmp_path):
    """With two JAX CPU devices a batch is split over them (padded to an even size and trimmed):
    the same decisions and allocations as on one device, latencies to float32 rounding."""
    import os
    import subprocess
    import sys

    import ojrs_jax
    from ojrs_jax.system.scenario import sample_channels

    sched = ojrs_jax.load_run(tiny_run_dir)
    h = np.asarray(sample_channels(jax.random.key(3), sched.scn, 5))
    np.savez(tmp_path / "h.npz", h=h)
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2"}
    args = [str(tiny_run_dir), str(tmp_path / "h.npz"), str(tmp_path / "out.npz")]
    p = subprocess.run(
        [sys.executable, "-c", SPLIT, *args], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr[-2000:]
    one = sched.allocate(h)
    with np.load(tmp_path / "out.npz") as two:
        assert two["a"].shape == (5, sched.n_ue)
        np.testing.assert_array_equal(two["a"], one["a"])
        for k in ("latency", "f", "p"):
            np.testing.assert_allclose(two[k], one[k], rtol=1e-6)


def test_cpu_fusions_give_the_default_compilations_decisions(monkeypatch):
    """The scheduler compiles with XLA:CPU's library fusions (`CPU_FUSIONS`) when this jaxlib
    takes them: a per-UE network of the main job's shape (N = 30, M = 2, 64 x 64) decides the
    same 600 channels as under XLA's default compilation, allocations to float32 rounding;
    OJRS_CPU_FUSIONS=off compiles with the defaults."""
    from ojrs_jax.run import scheduler as sched_mod

    scn = make_scenario(SystemConfig(n_ue=30, n_mec=2, seed=5))
    cfg = TrainConfig(
        epochs=10,
        phi=5,
        batch=8,
        buffer=16,
        state="channel",
        arch="per_ue",
        ue_hidden=(64, 64),
        ue_embed=32,
    )
    sae_cfg = SAEConfig.from_mapping({"latent": 8, "preprocess": "linear"})
    net = cfg.policy_net(scn.n_ue, scn.n_mec, sae_cfg)
    policy = jax.tree.map(lambda x: 3.0 * x, init_policy(jax.random.key(1), net, 60))
    H = np.asarray(sample_channels(jax.random.key(2), scn, 600))

    sched_mod.cpu_fusion_options.cache_clear()
    if jax.default_backend() == "cpu":
        assert sched_mod.cpu_fusion_options() == sched_mod.CPU_FUSIONS  # jaxlib 0.10 takes them
    fused = make_scheduler(scn, cfg, sae_cfg, policy, None).allocate(H)
    monkeypatch.setenv("OJRS_CPU_FUSIONS", "off")
    sched_mod.cpu_fusion_options.cache_clear()
    assert sched_mod.cpu_fusion_options() is None
    plain = make_scheduler(scn, cfg, sae_cfg, policy, None).allocate(H)
    sched_mod.cpu_fusion_options.cache_clear()

    assert len({tuple(a) for a in plain["a"]}) > 100  # the decisions depend on the channel
    np.testing.assert_array_equal(fused["a"], plain["a"])
    for k in ("latency", "f", "p"):
        np.testing.assert_allclose(fused[k], plain[k], rtol=1e-6)


def test_allocate_refuses_non_finite_channels():
    """`Scheduler.allocate` refuses a NaN or infinite gain with a ConfigError naming it (its
    compilation takes max without NaN propagation, so a NaN must not reach the network)."""
    from ojrs_jax.core.settings import ConfigError

    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2, seed=3))
    cfg = TrainConfig(
        epochs=10,
        phi=5,
        batch=8,
        buffer=16,
        state="channel",
        arch="per_ue",
        ue_hidden=(16, 16),
        ue_embed=8,
    )
    sae_cfg = SAEConfig.from_mapping({"latent": 8, "preprocess": "linear"})
    net = cfg.policy_net(scn.n_ue, scn.n_mec, sae_cfg)
    sched = make_scheduler(scn, cfg, sae_cfg, init_policy(jax.random.key(1), net, 12), None)
    h = np.asarray(sample_channels(jax.random.key(2), scn, 3))
    assert sched.allocate(h)["a"].shape == (3, 6)
    for bad in (np.nan, np.inf):
        hb = h.copy()
        hb[1, 4, 0] = bad
        with pytest.raises(ConfigError, match="NaN or infinite"):
            sched.allocate(hb)
