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
# # Training walk-through: from channels to a trained OJRS policy
#
# **Story.** OJRS learns online. A 2r-SAE compresses each channel h into a short code s; a
# policy DNN maps s to a decision; adaptive simulated annealing (ASA) improves that decision; the
# improved decision is stored in the 2p-ER replay and the policy imitates it (Algorithm 3). This
# notebook runs that loop at a small scale, watches reward, loss and the adaptive ASA iteration
# count T_SA, opens the replay buffer to see what 2p-ER keeps and samples, and finally lets the
# trained policy decide on channels it has never seen, against the certified optimum.
#
# Everything goes through `ojrs_jax.run.build`, the same path `ojrs-train` takes.

# %%
import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
from hydra import compose, initialize_config_module

from ojrs_jax.agent import replay
from ojrs_jax.agent.policy import params_norm_sq
from ojrs_jax.app.hydra import to_container
from ojrs_jax.run.build import build, pretrain_sae
from ojrs_jax.run.evaluation import evaluate_run
from ojrs_jax.search.asa import asa_search
from ojrs_jax.search.baselines import greedy
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.exact import exact_miqp, latency_np
from ojrs_jax.system.scenario import sample_channels

plt.rcParams.update({"figure.dpi": 100, "font.size": 11, "axes.grid": True, "grid.alpha": 0.3})

# %% tags=["parameters"]
# "ci" is the small run of tests/test_notebooks.py; "demo" the interactive default.
SCALE = os.environ.get("OJRS_NB_SCALE", "demo")

# %% [markdown]
# ## Configure
# The run is the `ojrs-train train=paper` config (the paper's pipeline: 2r-SAE state, flat DNN)
# with overrides, exactly as on the command line: the paper's deployment (N = 30, M = 2) at the
# demo scale, N = 10 with small K and batches at the CI scale.
# Both use a light L2 weight, a larger Adam step and four steps per training round instead of the
# paper's lambda = 0.02 and one step: with those, a run this short ends with a policy that
# proposes nearly the same decision for every channel (about Greedy).

# %%
OVERRIDES = {
    "ci": [
        "train=paper",
        "scale=paper_m2",
        "scale.n_ue=10",
        "sae.latent=10",
        "sae.steps=150",
        "sae.batch_size=64",
        "sae.memory_size=128",
        "sae_pretrain.draws=512",
        "asa.k=32",
        "asa.max_iter=12",
        "asa.t_sa0=6",
        "train.epochs=600",
        "train.phi=5",
        "train.batch=32",
        "train.buffer=128",
        "train.chunk=200",
        "train.learning_rate=3e-3",
        "train.lam=1e-4",
        "train.updates=4",
        "train.change_epoch=0",
    ],
    "demo": [
        "train=paper",
        "scale=paper_m2",
        "asa.k=64",
        "train.epochs=3000",
        "train.learning_rate=3e-3",
        "train.lam=1e-4",
        "train.updates=4",
        "train.change_epoch=0",
    ],
}[SCALE]
N_EVAL = {"ci": 100, "demo": 500}[SCALE]  # held-out channels for the final comparison
WINDOW = {"ci": 50, "demo": 200}[SCALE]  # moving-average window of the curves

with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
    cfg = compose("train", overrides=OVERRIDES)
spec = build(to_container(cfg))  # build takes the resolved config as a plain dict
keys = spec.keys()
tc = spec.train_cfg
print(
    f"N = {spec.scn.n_ue}, M = {spec.scn.n_mec}; {tc.epochs} epochs, phi = {tc.phi}, "
    f"batch {tc.batch}, buffer {tc.buffer}, replay {tc.replay!r}, K = {tc.asa.k}"
)

# %% [markdown]
# ## 1. Pretrain the 2r-SAE (Algorithm 1, offline part)
# `pretrain_sae` draws channels, trains the autoencoder with the eq. 23 loss and reports the
# held-out reconstruction accuracy Acc = 1 - sum|h - hhat| / sum h and the compression ratio CR.

# %%
sae_params, sae_report = pretrain_sae(keys["sae"], spec)
print(
    f"held-out Acc {sae_report['acc']:.3f}, CR {sae_report['cr']:.2f}, "
    f"trained in {sae_report['seconds']:.1f} s"
)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(sae_report["loss_curve"], color="tab:purple")
ax.set(xlabel="Adam step", ylabel="eq. 23 loss (minibatch)", yscale="log")
ax.set_title("2r-SAE pretraining loss")
plt.show()

# %% [markdown]
# ## 2. Online training (Algorithm 3)
# A host loop over jitted chunks, as in `ojrs-train`: each chunk is one `lax.scan` over blocks of
# phi epochs, and its per-epoch metrics come back as arrays.

# %%
env = spec.env_params()
state = spec.trainer.init(keys["train"], sae_params)
chunks = []
t0 = time.perf_counter()
while int(state.epoch) < tc.n_blocks * tc.phi:
    state, m = spec.trainer.run_chunk(state, env)
    chunks.append(jax.tree.map(np.asarray, m))
    print(
        f"epoch {int(state.epoch):5d}: mean reward of the chunk {m['reward'].mean():.4f} 1/s, "
        f"T_SA {int(state.t_sa)}, {time.perf_counter() - t0:.1f} s"
    )
metrics = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def smooth(x, window=WINDOW):
    """Trailing moving average (shorter at the start)."""
    c = np.cumsum(np.insert(np.asarray(x, np.float64), 0, 0.0))
    i = np.arange(1, len(x) + 1)
    n = np.minimum(i, window)
    return (c[i] - c[i - n]) / n


# %%
ep = np.arange(len(metrics["reward"]))
fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
ax = axes[0]
ax.plot(ep, metrics["reward"], color="tab:blue", alpha=0.2, lw=0.5)
ax.plot(ep, smooth(metrics["reward"]), color="tab:blue", label="policy action a_t")
ax.plot(ep, smooth(1 / metrics["latency_search"]), color="tab:orange", label="after ASA, a*_t")
ax.set(xlabel="epoch", ylabel="reward 1/L (1/s)", title=f"Reward ({WINDOW}-epoch average)")
ax.legend()
axes[1].plot(ep, metrics["loss"], color="tab:red")
axes[1].set(xlabel="epoch", ylabel="eq. 25 loss", title="Policy loss after each update")
axes[2].plot(ep, metrics["t_sa"], color="tab:green")
axes[2].set(xlabel="epoch", ylabel="T_SA (iterations)", title="Adaptive ASA iterations (eq. 30)")
plt.show()

# %% [markdown]
# The policy's own reward rises towards the reward after the ASA search: the policy learns to
# propose what the search finds. T_SA grows by one after every training round that cuts the loss
# by at least eps = 0.02 (eq. 30, the decrease summed over the round's Adam steps) and shrinks by
# one otherwise: it falls to 1 once the loss stops moving, or climbs to its cap `asa.max_iter`
# while each round of four steps still makes progress.
#
# ## 3. Inside the 2p-ER replay buffer
# Each stored transition carries ||theta||^2 of the policy that collected it. The *preserve*
# strategy keeps transitions with 1/rho_max < ||theta_now||^2 / ||theta_then||^2 < rho_max when
# the buffer is full (eq. 31); the *priority* strategy samples transition i with probability
# P_i proportional to (|Delta-delta_i| + epsilon)^tau (eq. 32).

# %%
buf = state.buffer
norm_now = float(params_norm_sq(state.policy))
probs = np.asarray(replay.probabilities(buf))
kept = np.asarray(replay.preserved(buf, norm_now))
valid = np.asarray(buf.valid)
age = int(buf.count) - np.asarray(buf.inserted)
rho_max = float(buf.params.rho_max)
print(
    f"{valid.sum()} of {valid.size} slots filled after {int(buf.count)} adds; "
    f"preserved share {kept[valid].mean():.1%}; sampling probability "
    f"min {probs[valid].min():.2e}, max {probs[valid].max():.2e} (uniform {1 / valid.sum():.2e})"
)

fig, axes = plt.subplots(1, 2, figsize=(13, 4), constrained_layout=True)
ax = axes[0]
for sel, label, color in (
    (kept, "preserved", "tab:green"),
    (valid & ~kept, "evictable", "tab:grey"),
):
    ax.scatter(age[sel], probs[sel], s=12, color=color, label=f"{label} ({sel.sum()})")
ax.axhline(1 / valid.sum(), color="k", ls=":", label="uniform sampling")
ax.set(
    xlabel="age of the transition (adds ago)",
    ylabel="sampling probability P_i (eq. 32)",
    title="2p-ER: priority and preservation of each stored transition",
)
ax.legend()
ax = axes[1]
ax.plot(ep, metrics["theta_norm_sq"], color="tab:purple", label="||theta_t||^2 of the policy")
ax.axhspan(
    norm_now / rho_max,
    norm_now * rho_max,
    color="tab:green",
    alpha=0.2,
    label="preserve band for the current policy",
)
ax.set(xlabel="epoch", ylabel="||theta||^2", title="Policy norm: who collected what is preserved")
ax.legend()
plt.show()

# %% [markdown]
# Priorities spread the sampling probability around the uniform level: transitions whose last
# training step cut the loss the most are replayed more often, and new ones enter with the
# current maximum priority. When every stored transition lies inside the preserve band (a policy
# whose norm has settled), the oldest one is overwritten, so the buffer never freezes.
#
# ## 4. Deciding on new channels
# The trained pipeline (online encoder, then policy argmax, no search) decides on held-out
# channels; so does the policy followed by one ASA search of T_SA iterations (what OJRS does
# online), and Greedy. The exact optimum certifies each: NRR = L(exact) / L(decision) <= 1.

# %%
scn = spec.scn
H = sample_channels(jax.random.key(2024), scn, N_EVAL)
problems = Problem(dep=from_scenario(scn), h=H)  # one deployment shared by the batch
a_pol = np.asarray(spec.trainer.decide(state.policy, state.sae.online, env, problems))
search = jax.jit(
    jax.vmap(
        lambda k, h, a: asa_search(
            k, scn, h, a, state.t_sa, state.hyper.asa, k=tc.asa.k, max_iter=tc.asa.max_iter
        )[0]
    )
)
a_asa = np.asarray(search(jax.random.split(jax.random.key(7), N_EVAL), H, a_pol))
H_np = np.asarray(H, np.float64)
a_g = np.asarray(greedy(scn))
exact = np.array([exact_miqp(scn, H_np[e], warm_start=a_pol[e]).latency for e in range(N_EVAL)])
lat = {
    "policy (no search)": np.array([latency_np(scn, H_np[e], a_pol[e]) for e in range(N_EVAL)]),
    "policy + ASA": np.array([latency_np(scn, H_np[e], a_asa[e]) for e in range(N_EVAL)]),
    "Greedy": np.array([latency_np(scn, H_np[e], a_g) for e in range(N_EVAL)]),
}
for name, v in lat.items():
    print(f"{name:>18}: mean L {v.mean():7.3f} s, mean NRR {np.mean(exact / v):.4f}")
print(f"{'exact optimum':>18}: mean L {exact.mean():7.3f} s")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
ax = axes[0]
for name, v in lat.items():
    ax.scatter(exact, v, s=14, alpha=0.7, label=name)
top = np.percentile(np.concatenate(list(lat.values())), 95)
lim = [exact.min() * 0.97, exact.max() * 1.03]
ax.plot(lim, lim, "k--", lw=1, label="= optimum")
ax.set(
    xlim=lim,
    ylim=(lim[0], top),
    xlabel="exact optimum L* (s)",
    ylabel="latency of the decision (s)",
    title=f"{N_EVAL} held-out channels (top 5% of latencies cut)",
)
ax.legend()
ax = axes[1]
bins = np.linspace(min(np.min(exact / v) for v in lat.values()), 1.0, 30)
for name, v in lat.items():
    ax.hist(
        exact / v, bins=bins, histtype="step", lw=2, label=f"{name} (mean {np.mean(exact / v):.3f})"
    )
ax.set(xlabel="NRR = L(exact) / L(decision)", ylabel="channels", title="Normalised reward ratio")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# The same comparison as one call, as `ojrs-train` reports it after training:

# %%
report = evaluate_run(spec.trainer, state, env, keys["eval"], draws=N_EVAL)
{k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}
