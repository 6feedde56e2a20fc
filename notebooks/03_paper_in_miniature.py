# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The paper in miniature: Figs. 3-10 and Tables II-III at a reduced scale
#
# **Story.** Each experiment of Jiang et al.'s Sec. V, shrunk so the whole notebook runs in a
# minute or two: the autoencoders (AE vs SAE vs 2r-SAE, Figs. 3-6), the action search (ASA vs
# plain SA, Fig. 7), the online DRL with adaptive T_SA (Fig. 8) and with 2p-ER against
# traditional replay (Figs. 9-10), the decision rules side by side (Table II) and the policy's
# normalised reward ratio before and after the task weights change (Table III). The numbers are
# those of a small deployment and a short run: the shapes of the comparisons are the point, not
# the paper's values. The command-line tools (`ojrs-sae`, `ojrs-fig7`, `ojrs-baselines`,
# `ojrs-train`) produce the full-scale versions.

# %%
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from hydra import compose, initialize_config_module
from IPython.display import Markdown, display

from ojrs_jax.app.hydra import to_container
from ojrs_jax.run.build import build
from ojrs_jax.run.evaluation import epochs_to_stable, evaluate_run, scenario_at
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae
from ojrs_jax.sae import train as sae_train
from ojrs_jax.search.asa import asa_search, plain_sa
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.exact import exact_miqp, latency_np
from ojrs_jax.system.p2 import batched_latency
from ojrs_jax.system.scenario import sample_channels

plt.rcParams.update({"figure.dpi": 100, "font.size": 11, "axes.grid": True, "grid.alpha": 0.3})

# %% tags=["parameters"]
# "ci" is the small run of tests/test_notebooks.py; "demo" the interactive default.
SCALE = os.environ.get("OJRS_NB_SCALE", "demo")

# %%
P = {
    "ci": dict(
        overrides=[
            "scale=paper_m2",
            "scale.n_ue=10",
            "sae.latent=10",
            "sae.steps=200",
            "sae.batch_size=128",
            "sae.memory_size=128",
            "asa.k=32",
            "asa.max_iter=12",
            "asa.t_sa0=6",
            "train=paper",
            "train.epochs=800",
            "train.change_epoch=400",
            "train.chunk=400",
            "train.phi=5",
            "train.batch=32",
            "train.buffer=128",
            "train.learning_rate=3e-3",
            "train.lam=1e-4",
            "train.updates=4",
        ],
        sae_channels=(1024, 256),  # training and held-out channels of Figs. 3-6
        search=(20, 20),  # channel draws and iterations of Fig. 7
        table=40,  # held-out channels of Tables II-III
        window=50,  # moving-average window of Figs. 9-10
    ),
    "demo": dict(
        overrides=[
            "scale=paper_m2",
            "asa.k=64",
            "train=paper",
            "train.epochs=4000",
            "train.change_epoch=2000",
            "train.chunk=2000",
            "train.learning_rate=3e-3",
            "train.lam=1e-4",
            "train.updates=4",
        ],
        sae_channels=(4096, 1000),
        search=(100, 50),
        table=300,
        window=200,
    ),
}[SCALE]

with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
    cfg_per = compose("train", overrides=P["overrides"])
    cfg_uni = compose("train", overrides=[*P["overrides"], "replay=uniform"])
spec = build(to_container(cfg_per))  # OJRS: 2r-SAE state, ASA, 2p-ER
spec_uni = build(to_container(cfg_uni))  # traditional DRL: uniform FIFO replay with epsilon-greedy
scn, tc, keys = spec.scn, spec.train_cfg, spec.keys()
print(
    f"N = {scn.n_ue}, M = {scn.n_mec}; DRL {tc.epochs} epochs, weights change at "
    f"{tc.change_epoch}; K = {tc.asa.k}; scale {SCALE!r}"
)

# %% [markdown]
# ## Figs. 3-6: AE vs SAE vs 2r-SAE
# Three autoencoders with the same code width, trained on the same channels for T_SAE steps:
# AE (one dense layer, MSE), SAE (two layers, MSE) and 2r-SAE (two layers, eq. 23: MSE plus the
# per-UE relative term plus L2). Accuracy is Acc = 1 - sum|h - hhat| / sum h on held-out
# channels; the histograms show per-entry errors |h - hhat| in units of the mean path gain.

# %%
n_tr, n_te = P["sae_channels"]
k_tr, k_te, k_init, k_fit = jax.random.split(keys["sae"], 4)
stats = channel_map.channel_stats(scn, spec.sae_cfg.preprocess)
x_tr = channel_map.preprocess(sample_channels(k_tr, scn, n_tr), stats)
x_te = channel_map.preprocess(sample_channels(k_te, scn, n_te), stats)
variants = {
    "AE": dataclasses.replace(spec.sae_cfg, variant="ae", layers=2),
    "SAE": dataclasses.replace(spec.sae_cfg, variant="sae", layers=3),
    "2r-SAE": spec.sae_cfg,  # the DRL's encoder below
}
models = {}
for name, c in variants.items():
    params = sae.init_sae(k_init, c, x_tr.shape[-1])
    params, curves = sae_train.train_sae(k_fit, c, params, x_tr, stats, x_te)
    models[name] = dict(
        cfg=c,
        params=params,
        curves=jax.tree.map(np.asarray, curves),
        test={k: float(v) for k, v in sae.evaluate(params, c, x_te, stats).items()},
    )
cr = sae.compression_ratio(scn.n_ue, scn.n_mec, spec.sae_cfg.latent)
rows = [
    f"| {n} | {m['test']['acc']:.4f} | {m['test']['rel_err']:.4f} | {cr:.2f} |"
    for n, m in models.items()
]
display(
    Markdown(
        "| model | held-out Acc | per-UE relative error | CR |\n|---|---|---|---|\n"
        + "\n".join(rows)
    )
)

# %%
colors = {"AE": "tab:orange", "SAE": "tab:green", "2r-SAE": "tab:blue"}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
for name, m in models.items():
    acc = m["curves"]["test_acc"]
    axes[0].plot(np.arange(1, acc.size + 1), 100 * acc, color=colors[name], label=name)
axes[0].set(
    xlabel="training step",
    ylabel="held-out accuracy Acc (%)",
    title="Fig. 3: reconstruction accuracy",
)
axes[0].set_ylim(
    bottom=max(0, 100 * min(m["curves"]["test_acc"][-1] for m in models.values()) - 30)
)
axes[0].legend()
for name in ("AE", "SAE"):  # eq. 23 adds terms, so the 2r-SAE loss is not comparable here
    c = models[name]["curves"]
    steps = np.arange(1, c["loss"].size + 1)
    axes[1].plot(
        steps, c["loss"], color=colors[name], alpha=0.35, label=f"{name} train (minibatch)"
    )
    axes[1].plot(steps, c["test_loss"], color=colors[name], lw=2, label=f"{name} test")
axes[1].set(
    xlabel="training step",
    ylabel="MSE loss (x = h / mean path gain)",
    yscale="log",
    title="Fig. 4: training and test loss",
)
axes[1].legend()
plt.show()

# %%
# %% [markdown]
# Depth helps (SAE over AE at the same code width). The 2r-SAE gives up a little absolute
# accuracy for a smaller per-UE relative error h_ij / max_k h_ik, the quantity a decision depends
# on (which server is relatively better for a UE): Figs. 5-6 show where the errors fall.

# %%
h_te = channel_map.postprocess(x_te, stats)


def entry_errors(name):
    """Per-entry |h - hhat| / mean path gain on the held-out channels."""
    m = models[name]
    h_hat = channel_map.postprocess(sae.reconstruct(m["params"], m["cfg"], x_te), stats)
    return np.asarray(channel_map.normalised_errors(h_te, h_hat, stats)).ravel()


errs = {name: entry_errors(name) for name in ("2r-SAE", "SAE")}
edges = np.linspace(0, np.quantile(np.concatenate(list(errs.values())), 0.99), 31)
fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True, constrained_layout=True)
for ax, (fig_no, name) in zip(axes, ((5, "2r-SAE"), (6, "SAE")), strict=True):
    e = np.minimum(errs[name], edges[-1] - 1e-12)  # the last bar holds the tail
    ax.bar(
        edges[:-1],
        np.histogram(e, edges)[0] / e.size,
        width=np.diff(edges),
        align="edge",
        color=colors[name],
        label=f"mean {errs[name].mean():.3f}, "
        f"per-UE relative error {models[name]['test']['rel_err']:.3f}",
    )
    ax.set(
        xlabel="per-entry |h - hhat| / mean path gain",
        yscale="log",
        title=f"Fig. {fig_no}: error distribution, {name}",
    )
    ax.legend()
axes[0].set_ylabel("fraction of held-out entries")
plt.show()

# %% [markdown]
# ## Fig. 7: ASA vs plain SA
# Both searches start from the same Random decision on each channel draw, with the same K,
# temperature and cooling; ASA draws neighbours by h-mutation (eqs. 27-29), plain SA uniformly.
# The dotted line is the mean certified optimum.

# %%
draws, iters = P["search"]
k_h, k_a0, k_asa, k_sa = jax.random.split(jax.random.key(7), 4)
H = sample_channels(k_h, scn, draws)
A0 = jax.vmap(random_decision, (0, None))(jax.random.split(k_a0, draws), scn)
asa_p, K = tc.asa_params, tc.asa.k


@jax.jit
def searches(H, A0):
    asa = jax.vmap(lambda k, h, a: asa_search(k, scn, h, a, iters, asa_p, k=K, max_iter=iters))
    sa = jax.vmap(lambda k, h, a: plain_sa(k, scn, h, a, iters, asa_p, k=K))
    traces_asa = asa(jax.random.split(k_asa, draws), H, A0)[2]  # (draws, iters) best L so far
    traces_sa = sa(jax.random.split(k_sa, draws), H, A0)[2]
    return traces_asa, traces_sa


l0 = np.asarray(batched_latency(scn, H, A0))[:, None]  # iteration 0: the common start
tr_asa, tr_sa = (np.concatenate([l0, np.asarray(t)], axis=1) for t in searches(H, A0))
opt = np.array([exact_miqp(scn, np.asarray(h, np.float64)).latency for h in H])
it = np.arange(iters + 1)
fig, ax = plt.subplots(figsize=(7.5, 4.2))
ax.plot(it, tr_asa.mean(0), lw=2, label="ASA (h-mutation)")
ax.plot(it, tr_sa.mean(0), "--", lw=2, label="plain SA (random neighbours)")
ax.axhline(opt.mean(), color="k", ls=":", label="exact optimum (SCIP)")
ax.set(
    xlabel="iteration G",
    ylabel="best weighted latency so far (s)",
    title=f"Fig. 7: best fitness per iteration, mean over {draws} draws, K = {K}",
)
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend()
plt.show()

# %% [markdown]
# ## Figs. 8-10: online DRL with 2p-ER vs traditional replay
# Two runs of Algorithm 3 on the same deployment, the same channels and the same 2r-SAE encoder
# (the one trained above): OJRS with 2p-ER, and "traditional DRL" with a uniform FIFO buffer and
# epsilon-greedy exploration. Halfway through, every task weight is redrawn (the paper's dynamic
# environment). Each run is two jitted chunks, so the state at the change is kept for Table III.
# Both use a light L2 weight, a larger Adam step and four steps per round (paper: lambda = 0.02,
# one step, with which a run this short settles on one fixed decision, about Greedy's).

# %%
env = spec.env_params()  # the same weights change for both runs (drawn from the run's seed)
sae_params = models["2r-SAE"]["params"]


def run(s):
    """Algorithm 3 in chunks: (spec, the states after each chunk, per-epoch metrics)."""
    st = s.trainer.init(keys["train"], sae_params)
    states, chunks = [], []
    t0 = time.perf_counter()
    while int(st.epoch) < s.train_cfg.n_blocks * s.train_cfg.phi:
        st, m = s.trainer.run_chunk(st, env)
        states.append(st)
        chunks.append(jax.tree.map(np.asarray, m))
    print(f"{s.train_cfg.replay}: {int(st.epoch)} epochs in {time.perf_counter() - t0:.1f} s")
    return s, states, {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


runs = {"2p-ER (OJRS)": run(spec), "uniform replay (traditional)": run(spec_uni)}
change = int(env.change_epoch)
for name, (_, _, m) in runs.items():
    print(
        f"{name}: reward stable after "
        f"{epochs_to_stable(m['reward'][:change], P['window'], tol=0.05)} epochs "
        "(its moving average stays within 5% of its value at the change)"
    )


def smooth(x, window=P["window"]):
    """Trailing moving average (shorter at the start)."""
    c = np.cumsum(np.insert(np.asarray(x, np.float64), 0, 0.0))
    i = np.arange(1, len(x) + 1)
    n = np.minimum(i, window)
    return (c[i] - c[i - n]) / n


# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), constrained_layout=True)
for (name, (_, _, m)), color in zip(runs.items(), ("tab:blue", "tab:red"), strict=True):
    ep = np.arange(m["reward"].size)
    axes[0].plot(ep, m["t_sa"], color=color, label=name)
    axes[1].plot(ep, smooth(m["reward"]), color=color, label=name)
    axes[2].plot(ep, m["loss"], color=color, alpha=0.8, label=name)
for ax in axes:
    ax.axvline(change, color="grey", ls="--", lw=1, label="weights change")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=9)
axes[0].set(ylabel="T_SA (iterations)", title="Fig. 8: adaptive ASA iterations (eq. 30)")
axes[1].set(ylabel="reward 1/L (1/s)", title=f"Fig. 9: reward ({P['window']}-epoch average)")
axes[2].set(ylabel="eq. 25 loss", title="Fig. 10: policy loss")
plt.show()

# %% [markdown]
# ## Table II: the decision rules side by side
# On held-out channels with the weights in force at the end of training: Greedy, Random, ASA from
# Greedy (T_SA(0) iterations, no DNN), the trained OJRS policy (encoder + DNN, no search) and the
# exact optimum. Time is the median wall time of one decision for one channel (jitted, after
# compilation; SCIP's solve time for Exact).

# %%
state_end = runs["2p-ER (OJRS)"][1][-1]
scn_end = scenario_at(env, int(state_end.epoch))
n_tab = P["table"]
H = sample_channels(jax.random.key(11), scn_end, n_tab)
H_np = np.asarray(H, np.float64)
rng = jax.random.split(jax.random.key(12), n_tab)
dep_end = from_scenario(scn_end)  # the deployment the policy decides for (one channel)
rules = {
    "Greedy": jax.jit(lambda k, h: greedy(scn_end, h)),
    "Random": jax.jit(lambda k, h: random_decision(k, scn_end)),
    "ASA": jax.jit(
        lambda k, h: asa_search(
            k, scn_end, h, greedy(scn_end), tc.asa.t_sa0, asa_p, k=K, max_iter=tc.asa.max_iter
        )[0]
    ),
    "OJRS policy": jax.jit(
        lambda k, h: spec.trainer.decide(
            state_end.policy, state_end.sae.online, env, Problem(dep=dep_end, h=h[None])
        )[0]
    ),
}
table = {}
for name, rule in rules.items():
    jax.block_until_ready(rule(rng[0], H[0]))  # compile outside the timing
    decisions, seconds = [], []
    for e in range(n_tab):
        t0 = time.perf_counter()
        decisions.append(np.asarray(jax.block_until_ready(rule(rng[e], H[e]))))
        seconds.append(time.perf_counter() - t0)
    table[name] = (
        np.array([latency_np(scn_end, H_np[e], decisions[e]) for e in range(n_tab)]),
        np.median(seconds),
    )
ex = [exact_miqp(scn_end, H_np[e]) for e in range(n_tab)]
table["Exact (SCIP)"] = (np.array([r.latency for r in ex]), np.median([r.seconds for r in ex]))
l_opt = table["Exact (SCIP)"][0]
rows = [
    f"| {n} | {v.mean():.3f} | {np.median(v):.3f} | {np.mean(1 / v):.4f} | "
    f"{np.mean(l_opt / v):.4f} | {1000 * s:.2f} |"
    for n, (v, s) in table.items()
]
display(
    Markdown(
        f"**Table II (reduced):** N = {scn.n_ue}, M = {scn.n_mec}, {n_tab} held-out channels\n\n"
        "| method | mean L (s) | median L (s) | mean reward 1/L | NRR vs exact | time (ms) |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
)

# %% [markdown]
# ## Table III: NRR before and after the weights change
# The policy (no search) on held-out channels, NRR = L(exact) / L(policy), at three moments: at
# the change with the old weights (F), right after it with the new weights and the unchanged
# policy, and at the end of training (S). `ojrs_jax.run.evaluation.evaluate_run` certifies every
# draw with SCIP. (The paper's F-/S- columns summarise NRR during training; these are held-out
# means.)

# %%
old_env = env.replace(change_epoch=jnp.asarray(2**30, jnp.int32))  # weights never change
rows = []
for name, (s_run, states, _) in runs.items():
    mid, end = states[0], states[-1]
    f = evaluate_run(s_run.trainer, mid, old_env, keys["eval"], n_tab)
    jolt = evaluate_run(s_run.trainer, mid, env, keys["eval"], n_tab)
    s = evaluate_run(s_run.trainer, end, env, keys["eval"], n_tab)
    rows.append(
        f"| {name} | {scn.n_mec} | {models['2r-SAE']['test']['acc']:.4f} | {cr:.2f} | "
        f"{f['nrr_policy']:.4f} | {jolt['nrr_policy']:.4f} | {s['nrr_policy']:.4f} |"
    )
display(
    Markdown(
        "**Table III (reduced):** 2r-SAE accuracy and CR; NRR of the policy\n\n"
        "| replay | M | Acc | CR | NRR before change (F) | NRR just after change | "
        "NRR after re-training (S) |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
)
