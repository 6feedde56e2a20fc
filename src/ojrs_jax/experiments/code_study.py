"""Offline study of the SAE code as the DRL state (paper Sec. IV.B-C, eqs. 19-25).

Separates what the code can carry from what DRL makes of it:
- `fit_autoencoder`: the SAE trained by its own loss (eq. 23, or MSE) to the plateau rule of
  `sae.run_to_plateau`, returning the reconstruction of held-out channels;
- `asa_labels`: the searched actions a* = ASA(Greedy, h) (Algorithm 2) for training channels;
- `train_offline`: the policy of eq. 24 fitted to those labels by eq. 25 (cross-entropy plus
  lambda/2 ||theta||^2) on the code, the ceiling of what DRL with the same labels can learn;
- the NRR of a policy's decisions: `system.certify.certify` (with the optima as `reference`).
The code's decision fidelity (the optimum on the reconstruction) is in `ojrs_jax.sae.metrics`.
"""

from __future__ import annotations

from typing import Any

import jax

from ojrs_jax.agent.agents import fit_offline, joint_loss
from ojrs_jax.agent.policy import policy_loss
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.sae import train as sae_train
from ojrs_jax.search.asa import ASAParams, label_channels
from ojrs_jax.system.scenario import Scenario


def fit_autoencoder(
    key: jax.Array,
    cfg: sae_mod.SAEConfig,
    scn: Scenario,
    h_train: jax.Array,
    h_val: jax.Array,
) -> dict[str, Any]:
    """Train one SAE on h_train (E, N, M) to the plateau of its loss on h_val; returns params,
    stats, curves, steps taken, and the reconstruction `h_hat` of h_val (in physical units)."""
    stats = channel_map.channel_stats(scn, cfg.preprocess)
    x, x_val = channel_map.preprocess(h_train, stats), channel_map.preprocess(h_val, stats)
    k_init, k_fit = jax.random.split(key)
    params = sae_mod.init_sae(k_init, cfg, x.shape[-1], scn.n_mec)
    params, curves, steps = sae_train.train_sae_converged(k_fit, cfg, params, x, stats, x_val)
    h_hat = channel_map.postprocess(sae_mod.reconstruct(params, cfg, x_val), stats)
    return {"params": params, "stats": stats, "curves": curves, "steps": steps, "h_hat": h_hat}


def asa_labels(
    key: jax.Array, scn: Scenario, h: jax.Array, t_sa: int = 50, k: int = 128
) -> jax.Array:
    """a* (E, N) = ASA started at Greedy, `t_sa` iterations of K neighbours, per channel
    (`search.asa.label_channels` with the default ASA numbers)."""
    run = jax.jit(label_channels, static_argnames=("k", "n_iter", "batch"))
    return run(key, scn, h, ASAParams(), k=k, n_iter=t_sa)


def train_offline(
    key: jax.Array,
    net: Any,
    states: jax.Array,
    labels: jax.Array,
    steps: int = 3000,
    batch: int = 256,
    learning_rate: float = 1e-3,
    lam: float = 1e-4,
) -> Any:
    """Fit the policy `net` to (states (E, D), labels (E, N)) by Adam on eq. 25."""
    k_init, k_fit = jax.random.split(key)
    params = net.init(k_init, states[0])

    def loss(p, s, a):
        return policy_loss(net, p, s, a, lam)

    return fit_offline(k_fit, loss, params, states, labels, steps, batch, learning_rate)


def train_offline_joint(
    key: jax.Array,
    net: Any,
    sae_cfg: sae_mod.SAEConfig,
    sae_params: Any,
    x: jax.Array,
    labels: jax.Array,
    stats: channel_map.ChannelStats,
    code_weight: float = 1.0,
    steps: int = 3000,
    batch: int = 256,
    learning_rate: float = 1e-3,
    lam: float = 1e-4,
) -> tuple[Any, Any]:
    """Fit the policy and the SAE together by the joint agent's loss (`agents.joint_loss`: eq. 25
    on the code encoder(x) plus `code_weight` x the SAE's own loss), so the encoder learns what
    the decision needs while the decoder keeps it a compression of h. Starts from `sae_params`
    (a pretrained SAE); returns (policy parameters, SAE parameters)."""
    k_init, k_fit = jax.random.split(key)
    pol0 = net.init(k_init, sae_mod.encode(sae_params, sae_cfg, x[:1])[0])

    def loss(p, xb, a):
        theta = {"policy": p[0], "encoder": p[1]}
        return joint_loss(net, sae_cfg, stats, code_weight, theta, xb, a, lam)

    return fit_offline(k_fit, loss, (pol0, sae_params), x, labels, steps, batch, learning_rate)
