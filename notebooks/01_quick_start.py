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
# # Quick start: one deployment, one channel, three decisions
#
# **Story.** A scheduler must decide, for every user equipment (UE), whether its task runs
# locally or on one of the edge servers (MECs). This notebook builds the paper's deployment
# (N = 30 UEs, M = 2 MECs in a 50 m square), draws one Rayleigh-fading channel, and compares
# three decisions on it: **Greedy** (nearest MEC), **Random** and the certified **exact**
# optimum (a convex MIQP solved by SCIP). For each decision the resource-allocation
# sub-problem P2 (CPU shares, powers) is solved in closed form, so we can see the latency of
# every UE. It ends with the same comparison over many channel draws.
#
# The settings come from the same Hydra configs as the command-line tools (`conf/`), with the
# same override syntax.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
from hydra import compose, initialize_config_module
from matplotlib.colors import ListedColormap
from matplotlib.ticker import FuncFormatter

from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.exact import exact_miqp
from ojrs_jax.system.p2 import batched_latency, feasibility, solve_p2
from ojrs_jax.system.p2 import evaluate as allocate
from ojrs_jax.system.scenario import (
    make_scenario,
    path_gain,
    sample_channel,
    sample_channels,
    system_config,
)

plt.rcParams.update({"figure.dpi": 100, "font.size": 11, "axes.grid": True, "grid.alpha": 0.3})

# %% tags=["parameters"]
# "ci" is the small run of tests/test_notebooks.py; "demo" the interactive default.
SCALE = os.environ.get("OJRS_NB_SCALE", "demo")

# %%
DRAWS = {"ci": 40, "demo": 500}[SCALE]  # channel draws of the last section
with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
    cfg = compose("baselines", overrides=["scale=paper_m2"])
scn = make_scenario(system_config(cfg))
print(f"N = {scn.n_ue} UEs, M = {scn.n_mec} MECs, scale {SCALE!r}")

# %% [markdown]
# ## The deployment
# UE positions are drawn once per scenario (seed in `conf/scale/paper_m2.yaml`); the MECs sit at
# the paper's sites. Each UE is coloured by its nearest MEC, which is where Greedy sends it.

# %%
ue, mec = np.asarray(scn.ue_pos), np.asarray(scn.mec_pos)
a_greedy = np.asarray(greedy(scn))
nearest = np.argmin(np.linalg.norm(ue[:, None] - mec[None], axis=-1), axis=1)
colors = plt.cm.tab10(np.arange(scn.n_mec))

fig, ax = plt.subplots(figsize=(7.5, 5.5))
for j in range(scn.n_mec):
    sel = nearest == j
    ax.scatter(ue[sel, 0], ue[sel, 1], s=40, color=colors[j], label=f"UEs nearest MEC {j + 1}")
    ax.scatter(*mec[j], s=350, marker="s", color=colors[j], edgecolor="k", label=f"MEC {j + 1}")
for i, (x, y) in enumerate(ue):
    ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set(xlim=(0, 50), ylim=(0, 50), xlabel="x (m)", ylabel="y (m)", aspect="equal")
ax.set_title(f"Deployment: {scn.n_ue} UEs, {scn.n_mec} MECs")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9)
plt.show()

# %% [markdown]
# ## One channel draw
# The gain is h_ij = beta0 / R_ij^2 * l_ij with l_ij ~ Exp(1) (Rayleigh fading power), redrawn
# every epoch. The heatmap shows the receive SNR P_max h_ij / sigma2 in dB; the lower panel shows
# how far this draw's fading moves each link from its mean (the path gain).

# %%
h = sample_channel(jax.random.key(0), scn)
snr_db = 10 * np.log10(np.asarray(scn.p_max * h / scn.noise))
fade_db = 10 * np.log10(np.asarray(h / path_gain(scn)))

fig, axes = plt.subplots(2, 1, figsize=(11, 3.6), sharex=True, constrained_layout=True)
for ax, data, label, cmap in (
    (axes[0], snr_db, "SNR (dB)", "viridis"),
    (axes[1], fade_db, "fading 10 log10 l (dB)", "RdBu"),
):
    lim = None if cmap == "viridis" else np.abs(data).max()
    im = ax.imshow(data.T, aspect="auto", cmap=cmap, vmin=None if lim is None else -lim, vmax=lim)
    ax.set_yticks(range(scn.n_mec), [f"MEC {j + 1}" for j in range(scn.n_mec)])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=label, pad=0.01)
axes[1].set_xlabel("UE index i")
axes[0].set_title("Channel of one epoch: receive SNR per link, and its Rayleigh fading")
plt.show()

# %% [markdown]
# ## Three decisions and their P2 allocations
# A decision is an integer vector a with a_i = 0 (local) or j (MEC j). The exact optimum comes
# from SCIP with a certificate (`status == "optimal"`); Greedy and Random apply the capacity rule.
# `ojrs_jax.system.p2.evaluate` validates a decision and solves P2 for it: offloading UEs
# transmit at P_max, local UEs run at F_L, and each MEC shares its CPU in proportion to
# sqrt(w_i F_i).

# %%
a_random = np.asarray(random_decision(jax.random.key(1), scn))
res = exact_miqp(scn, np.asarray(h), warm_start=a_greedy)
decisions = {"Greedy": a_greedy, "Random": a_random, "Exact (SCIP)": res.a}
alloc = {name: allocate(scn, h, a) for name, a in decisions.items()}
print(f"SCIP: {res.status} in {1000 * res.seconds:.1f} ms, proven lower bound {res.bound:.4f} s")
for name, al in alloc.items():
    ok = all(feasibility(scn, decisions[name], al).values())
    print(f"{name:>13}: L = {float(al.latency):7.3f} s   constraints C1-C5 hold: {ok}")
# the jaxopt projected-gradient solver of P2 agrees with the closed form
pg = float(solve_p2(scn, h, res.a, "jaxopt").latency)
print(f"exact decision, P2 by jaxopt: L = {pg:.4f} s")

# %%
names = list(decisions)
x = np.arange(scn.n_ue)
width = 0.27
fig, (ax, ax2) = plt.subplots(
    2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]}
)
for k, name in enumerate(names):
    t = np.asarray(alloc[name].per_ue) * np.asarray(scn.weights)
    total = float(alloc[name].latency)
    ax.bar(x + (k - 1) * width, t, width, label=f"{name} (total L = {total:.2f} s)")
ax.set(ylabel="weighted latency w_i T_i (s)")
ax.set_title("Latency of every UE under each decision", pad=28)
ax.legend(fontsize=9, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
cmap = ListedColormap(["lightgrey", *colors[: scn.n_mec]])
ax2.imshow(
    np.stack([decisions[n] for n in names]), cmap=cmap, vmin=0, vmax=scn.n_mec, aspect="auto"
)
ax2.set_yticks(range(len(names)), names)
ax2.set_xticks(x[::2], [str(i) for i in x[::2]])
ax2.set_xlabel("UE index i   (grey: local, colours: MEC 1, MEC 2 as on the map)")
ax2.grid(False)
fig.tight_layout()
plt.show()

# %% [markdown]
# The optimum keeps UEs whose link is in a deep fade at home (local, 1 s each) and spreads the
# rest so that no MEC's shared CPU dominates; Greedy sends everyone to the nearest MEC and pays
# for the faded links, Random for bad luck.
#
# ## Over many channel draws
# The same three rules on fresh draws. Rayleigh fading makes the upload time heavy-tailed, so
# rules that offload regardless of the channel have a long tail, while the optimum is stable.

# %%
H = sample_channels(jax.random.key(2), scn, DRAWS)
A_random = jax.vmap(random_decision, (0, None))(jax.random.split(jax.random.key(3), DRAWS), scn)
H_np = np.asarray(H, np.float64)
lat = {
    "Greedy": np.asarray(batched_latency(scn, H, np.broadcast_to(a_greedy, (DRAWS, scn.n_ue)))),
    "Random": np.asarray(batched_latency(scn, H, A_random)),
    "Exact (SCIP)": np.array(
        [exact_miqp(scn, H_np[e], warm_start=a_greedy).latency for e in range(DRAWS)]
    ),
}
for name, v in lat.items():
    print(f"{name:>13}: mean {v.mean():8.3f} s   median {np.median(v):7.3f} s")

fig, ax = plt.subplots(figsize=(8, 4))
bins = np.logspace(
    np.log10(min(v.min() for v in lat.values())), np.log10(max(v.max() for v in lat.values())), 40
)
for name, v in lat.items():
    ax.hist(v, bins=bins, histtype="step", lw=2, label=f"{name} (median {np.median(v):.1f} s)")
ax.set(xscale="log", xlabel="weighted latency L (s), log scale", ylabel="channel draws")
for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
    axis(FuncFormatter(lambda v, _: f"{v:g}"))
ax.set_title(f"Latency of each rule over {DRAWS} channel draws")
ax.legend()
plt.show()
