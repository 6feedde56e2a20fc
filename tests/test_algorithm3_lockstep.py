"""Algorithm 3 (paper Sec. IV.C-E, eqs. 24-32) block by block against a float64 NumPy reference.

The JAX trainer runs one block (phi epochs + one training round) per `run_chunk` call; the test
re-derives every random number of that block from the state's key, the way `train.block` splits
it (channels, exploration, ASA's per-iteration uniforms, the replay draws), and feeds them to
tests/reference_algorithm3.py. The reference receives the uniforms of 2p-ER sampling, not the
drawn slots (it inverts its own CDF of the priorities), so a wrong priority changes which
transitions it trains on.

Two reference runs go alongside the JAX one: `synced` restarts every block from the JAX state
(float32 values turned to float64), so every block is checked on its own; `carried` follows its
own float64 state from the start, so an error that only shows over several blocks (or rounding
that drifts) is seen too. Discrete quantities (T_SA, actions, slots, insertion times) must agree
exactly; float ones to float32 accuracy.

The settings are chosen so that the run visits every branch: T_SA goes both up and down by
eq. 30, the small buffer fills and then evicts both its oldest slot and (oldest preserved by
eq. 31) a younger one, batches draw a slot twice, exploration and ASA both change actions, and
the task weights change mid-run. The test asserts that these regimes occur.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from conftest import fixed_trainer, hetero
from reference_algorithm3 import BlockDraws, RefConfig, RefState, block_ref
from reference_asa import latency_ref, scenario_np
from reference_replay import RefPER, RefUniform

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.replay import PERParams
from ojrs_jax.agent.trainer import make_env
from ojrs_jax.sae.model import SAEConfig, init_sae
from ojrs_jax.search.asa import ASAConfig, ASAParams, iteration_draws, stream_seeds
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channel

N, M, PHI, BATCH, CAP, UPDATES, K, MAX_ITER, BLOCKS = 5, 2, 4, 6, 8, 2, 8, 6, 8
LR, LAM, EXPLORE, DT_EPS, RHO_MAX, T_SA0 = 3e-2, 1e-3, 0.15, 0.13, 1.01, 2
CHANGE_EPOCH = 14  # inside block 3, so one block mixes both weight vectors


def make_case(replay: str, lr_final: float = 1.0):
    scn = hetero(make_scenario(SystemConfig(n_ue=N, n_mec=M, noise=2e-7, seed=2)), seed=2)
    cfg = TrainConfig(
        epochs=PHI * BLOCKS,
        phi=PHI,
        batch=BATCH,
        updates=UPDATES,
        buffer=CAP,
        replay=replay,
        hidden=(8,),
        learning_rate=LR,
        lr_final=lr_final,
        lam=LAM,
        explore_eps=EXPLORE,
        adaptive=True,
        change_epoch=CHANGE_EPOCH,
        incremental_sae=False,
        state="channel",
        arch="mlp",
        chunk=PHI,  # one block per run_chunk call
        asa=ASAConfig(k=K, max_iter=MAX_ITER, t_sa0=T_SA0),
        asa_params=ASAParams(eps=DT_EPS),
        per=PERParams(rho_max=RHO_MAX),
    )
    sae_cfg = SAEConfig(latent=4)
    trainer = fixed_trainer(cfg, sae_cfg, scn)
    env = make_env(jax.random.key(1), scn, cfg, sae_cfg)
    sae_params = jax.jit(lambda k: init_sae(k, sae_cfg, N * M))(jax.random.key(2))
    st = trainer.init(jax.random.key(0), sae_params)
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    ap = cfg.asa_params
    ref_cfg = RefConfig(
        n_ue=N,
        n_mec=M,
        phi=PHI,
        batch=BATCH,
        updates=UPDATES,
        capacity=CAP,
        replay=replay,
        learning_rate=LR,
        lam=LAM,
        explore_eps=EXPLORE,
        adaptive=True,
        k=K,
        max_iter=MAX_ITER,
        asa={
            "t0": ap.t0,
            "phi_c": ap.phi_c,
            "mut_scale": ap.mut_scale,
            "local_weight": ap.local_weight,
            "eps": ap.eps,
        },
        per={"rho_max": RHO_MAX, "tau": cfg.per.tau, "epsilon": cfg.per.epsilon},
        scenario=scenario_np(scn),
        weights_after=f64(env.weights_after),
        change_epoch=int(env.change_epoch),
        pre_kind=env.stats.kind,
        pre_loc=f64(env.stats.loc),
        pre_scale=f64(env.stats.scale),
        lr_final=lr_final,
        adam_steps=BLOCKS * UPDATES,
    )
    return trainer, env, st, ref_cfg


def block_draws(key, scn, replay: str):
    """The block's random numbers, split from the state's key as `train.block` splits it
    (returns the next state key and the draws as NumPy arrays)."""
    key, k_h, k_ep, _k_sae, k_batch = jax.random.split(key, 5)
    d = {"h": [], "u_explore": [], "explore_option": [], "asa_u": [], "asa_u_acc": []}
    for k_e, ke in zip(jax.random.split(k_h, PHI), jax.random.split(k_ep, PHI), strict=True):
        d["h"].append(sample_channel(k_e, scn))
        k_exp, k_opt, k_it = jax.random.split(ke, 3)
        d["u_explore"].append(jax.random.uniform(k_exp, (N,)))
        d["explore_option"].append(jax.random.randint(k_opt, (N,), 0, M + 1))
        # asa._search: the search's two seeds from its key, then iteration g's counter-hash draws
        seeds = stream_seeds(k_it)
        draws = [iteration_draws(seeds, g, K, N) for g in range(MAX_ITER)]
        d["asa_u"].append(jnp.stack([dr.u for dr in draws]))
        d["asa_u_acc"].append(jnp.stack([dr.u_acc for dr in draws]))
    k_b = jax.random.split(k_batch, UPDATES)
    if replay == "per":  # replay.sample: one uniform per draw, inverse CDF
        d["sample_u"] = [jax.random.uniform(k, (BATCH,)) for k in k_b]
    else:  # uniform_sample draws over the n valid slots; one row per possible n
        d["uniform_idx"] = [
            jnp.stack([jax.random.randint(k, (BATCH,), 0, n) for n in range(1, CAP + 1)])
            for k in k_b
        ]
    return key, BlockDraws(**{name: np.stack(v) for name, v in d.items()})


def layers_of(tree) -> list:
    """Flax policy params (or an Adam moment of the same shape) -> [(W, b)] in float64."""
    p = tree["params"]
    names = sorted(p, key=lambda k: int(k.split("_")[1]))
    return [(np.float64(p[n]["kernel"]), np.float64(p[n]["bias"])) for n in names]


def ref_buffer(b, replay: str, per: dict) -> RefPER | RefUniform:
    """The JAX ReplayState as a reference buffer."""
    if replay == "per":
        ref = RefPER(CAP, rho_max=per["rho_max"], tau=per["tau"], eps=per["epsilon"])
    else:
        ref = RefUniform(CAP)
    valid = np.asarray(b.valid)
    for i in np.flatnonzero(valid):
        ref.slots[i] = {
            "s": np.float64(b.s[i]),
            "a": np.asarray(b.a[i], np.int64),
            "theta0": float(b.theta_norm0[i]),
            "p": float(b.priority[i]),
            "t": int(b.inserted[i]),
        }
    if replay == "uniform":
        ref.queue = sorted(np.flatnonzero(valid).tolist(), key=lambda i: ref.slots[i]["t"])
    ref.time = int(b.count)
    return ref


def ref_state(st, cfg: RefConfig) -> RefState:
    adam = st.opt_state.inner_state[0]
    return RefState(
        layers=layers_of(st.policy),
        mu=layers_of(adam.mu),
        nu=layers_of(adam.nu),
        count=int(adam.count),
        buffer=ref_buffer(st.buffer, cfg.replay, cfg.per),
        t_sa=int(st.t_sa),
        epoch=int(st.epoch),
    )


def compare(st, ref: RefState, label: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """JAX state `st` against the reference state: integers exactly, floats to tolerance."""
    b, rb = st.buffer, ref.buffer
    valid = rb.valid()
    np.testing.assert_array_equal(np.asarray(b.valid), valid, err_msg=f"{label}: valid")
    np.testing.assert_array_equal(int(b.count), rb.time, err_msg=f"{label}: count")
    slots = [it for it in rb.slots if it is not None]
    got = {
        "inserted": np.asarray(b.inserted)[valid],
        "a": np.asarray(b.a)[valid],
        "s": np.asarray(b.s)[valid],
        "theta_norm0": np.asarray(b.theta_norm0)[valid],
        "priority": np.asarray(b.priority)[valid],
    }
    want = {
        "inserted": np.array([it["t"] for it in slots]),
        "a": np.array([it["a"] for it in slots]),
        "s": np.array([it["s"] for it in slots]),
        "theta_norm0": np.array([it["theta0"] for it in slots]),
        "priority": np.array([it["p"] for it in slots]),
    }
    for name in ("inserted", "a"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{label}: buffer {name}")
    np.testing.assert_allclose(got["s"], want["s"], rtol=1e-6, err_msg=f"{label}: buffer s")
    np.testing.assert_allclose(
        got["theta_norm0"], want["theta_norm0"], rtol=rtol, err_msg=f"{label}: theta_norm0"
    )
    np.testing.assert_allclose(
        got["priority"], want["priority"], rtol=1e-3, atol=1e-6, err_msg=f"{label}: priority"
    )
    assert int(st.t_sa) == ref.t_sa, f"{label}: T_SA {int(st.t_sa)} != reference {ref.t_sa}"
    assert int(st.epoch) == ref.epoch
    adam = st.opt_state.inner_state[0]
    assert int(adam.count) == ref.count
    for name, tree, layers in (
        ("theta", st.policy, ref.layers),
        ("adam mu", adam.mu, ref.mu),
        ("adam nu", adam.nu, ref.nu),
    ):
        for li, (pair, ref_pair) in enumerate(zip(layers_of(tree), layers, strict=True)):
            for part, x, y in zip(("W", "b"), pair, ref_pair, strict=True):
                tol = {"rtol": rtol, "atol": atol if name != "adam nu" else atol * 1e-3}
                np.testing.assert_allclose(x, y, **tol, err_msg=f"{label}: {name} {part}{li}")


def run_lockstep(replay: str, lr_final: float = 1.0):
    """JAX blocks with the synced and the carried reference; returns the synced infos and the
    JAX metrics of each block."""
    trainer, env, st, cfg = make_case(replay, lr_final)
    carried = ref_state(st, cfg)
    infos, metrics = [], []
    for blk in range(BLOCKS):
        key_next, draws = block_draws(st.key, env.scn, replay)
        synced, info = block_ref(cfg, ref_state(st, cfg), draws)
        carried, info_c = block_ref(cfg, carried, draws)
        st, m = trainer.run_chunk(st, env)
        m = jax.tree.map(np.asarray, m)
        np.testing.assert_array_equal(
            jax.random.key_data(st.key), jax.random.key_data(key_next), err_msg="key split"
        )
        label = f"{replay} block {blk}"
        compare(st, synced, f"{label} (synced)")
        b = st.buffer  # the block's phi searched actions a*, in epoch order
        newest = np.flatnonzero(
            np.asarray(b.valid) & (np.asarray(b.inserted) >= int(b.count) - PHI)
        )
        a_star = np.asarray(b.a)[newest[np.argsort(np.asarray(b.inserted)[newest])]]
        np.testing.assert_array_equal(a_star, info.a_star, err_msg=f"{label}: a*")
        # the block's metrics: the policy's action and the searched one (through their costs),
        # the loss after the round and its Delta-delta
        for e in range(PHI):
            scn = dict(cfg.scenario)
            if blk * PHI + e >= cfg.change_epoch:
                scn["weights"] = cfg.weights_after
            h = np.float64(draws.h[e])
            np.testing.assert_allclose(
                m["latency"][e], latency_ref(scn, h, info.a[e]), rtol=1e-5, err_msg=label
            )
            np.testing.assert_allclose(
                m["latency_search"][e],
                latency_ref(scn, h, info.a_star[e]),
                rtol=1e-5,
                err_msg=label,
            )
        np.testing.assert_allclose(m["delta"][0], info.delta, rtol=1e-3, atol=1e-6, err_msg=label)
        np.testing.assert_allclose(m["loss"][0], info.losses[-1], rtol=1e-5, err_msg=label)
        compare(st, carried, f"{label} (carried)", rtol=1e-3, atol=1e-4)
        infos.append(info)
        metrics.append(m)
    return infos, metrics, cfg


def test_per_blocks_match_reference():
    infos, metrics, cfg = run_lockstep("per")
    t_sa = [int(m["t_sa"][0]) for m in metrics]
    deltas = [i.delta for i in infos]
    kinds = [k for i in infos for k in i.insert_kind]
    # the regimes this run must visit, or it would pin nothing about them
    assert any(d >= DT_EPS for d in deltas), (deltas, t_sa)  # eq. 30: T_SA + 1
    assert any(d < DT_EPS and t > 1 for d, t in zip(deltas, t_sa, strict=True)), (deltas, t_sa)
    assert {"free", "oldest", "skip"} <= set(kinds), kinds  # eq. 31 evicts and preserves
    assert any(len(set(idx.tolist())) < BATCH for i in infos for idx in i.idx)  # duplicates
    assert any(np.any(i.a0 != i.a) for i in infos)  # exploration
    assert any(np.any(i.a_star != i.a0) for i in infos)  # ASA moved
    assert 0 < cfg.change_epoch < PHI * BLOCKS  # the weights change mid-run
    assert not np.allclose(cfg.weights_after, cfg.scenario["weights"])


def test_uniform_blocks_match_reference():
    """The traditional buffer, with the step size decayed by a cosine to a quarter
    (`train.lr_final`) so that the schedule is checked against the reference too."""
    infos, _, cfg = run_lockstep("uniform", lr_final=0.25)
    assert cfg.lr_final == 0.25 and cfg.adam_steps == BLOCKS * UPDATES
    kinds = [k for i in infos for k in i.insert_kind]
    assert {"free", "oldest"} <= set(kinds), kinds
