"""A policy of features, not identities: one network scores any N UEs and M MECs (eqs. 24-25).

Every input is a latency term of the closed-form P2 (eqs. 5-13) relative to the UE's local cost
l_i = w_i F_i / f_i0, so the policy is free of units and of UE indices:

    link (i, j): log(w_i D_i / r_ij / l_i)  (upload now, from h_ij),
                 log(w_i D_i / r(g_ij) / l_i)  (upload at the large-scale gain g_ij),
                 log(w_i F_i / F_MEC_j / l_i)  (compute alone on j),
                 log1p(sqrt(w_i F_i) S / F_MEC_j / l_i), S = sum_k sqrt(w_k F_k)  (all on j),
                 log1p(2 sqrt(w_i F_i) Y_j / F_MEC_j / l_i)  (marginal compute cost at load Y_j);
    UE i:        log l_i - mean_k log l_k (l_i over the geometric mean);   global: log N / 5,
                 log M / 3.

Y_j = sum_k P(a_k = j) sqrt(w_k F_k) is the load expected from the previous round's softmax
(0 in round 0): `rounds` passes of the same shape refine the decision as the load becomes
known. A pass embeds each link, pools the embeddings by masked means over MECs (per UE), over UEs
(per MEC) and over both, and scores each link from [link, its UE's and MEC's context, global];
the local option of UE i is scored from [UE features, UE context, global]. Shared weights and
mean pooling make the logits (N, M+1) permutation-equivariant over UEs and over MECs, and masks
keep padded UEs and MECs out of every mean (padded MEC options get logit -1e9). The loss is
eq. 25's cross-entropy against the searched a* over the real UEs (every round's logits, averaged)
plus lambda/2 ||theta||^2.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ojrs_jax.agent.policy import BlockDense, params_norm_sq
from ojrs_jax.system.deployment import Deployment, link_mask, safe_channel
from ojrs_jax.system.scenario import local_speed, rate

NEG = -1e9  # logit of a padded MEC option
CLIP = 12.0  # |log feature| cap: e^12 ~ 1.6e5 is beyond any useful contrast


class Features(NamedTuple):
    """Normalised inputs of one deployment and channel."""

    link: chex.Array  # (N, M, 4) static link features (the load feature is added per round)
    ue: chex.Array  # (N, 1)
    glob: chex.Array  # (2,)
    rel_sqrt_wf: chex.Array  # (N, M) 2 sqrt(w_i F_i) / F_MEC_j / l_i: load Y_j -> marginal cost
    sqrt_wf: chex.Array  # (N,) sqrt(w_i F_i), 0 on padded UEs
    ue_mask: chex.Array  # (N,) bool
    mec_mask: chex.Array  # (M,) bool


def _log(x):
    return jnp.clip(jnp.log(jnp.maximum(x, 1e-30)), -CLIP, CLIP)


def features(dep: Deployment, h: jax.Array) -> Features:
    """Features of one deployment (padded to N_max, M_max) under channel h (N_max, M_max)."""
    chex.assert_rank(h, 2)
    scn = dep.scn
    um, mm = dep.ue_mask, dep.mec_mask
    loc = scn.weights * scn.cycles / local_speed(scn)  # (N,) l_i
    wd = (scn.weights * scn.data_bits)[:, None]
    up = wd / rate(scn, safe_channel(dep, h), scn.p_max) / loc[:, None]
    g = jnp.where(dep.gain > 0, dep.gain, 1.0)
    up_g = wd / rate(scn, g, scn.p_max) / loc[:, None]
    comp = (scn.weights * scn.cycles)[:, None] / scn.f_mec[None, :] / loc[:, None]
    sw = jnp.where(um, jnp.sqrt(scn.weights * scn.cycles), 0.0)
    rel = sw[:, None] / scn.f_mec[None, :] / loc[:, None]  # (N, M)
    all_on = jnp.log1p(rel * jnp.sum(sw))
    link = jnp.stack([_log(up), _log(up_g), _log(comp), all_on], axis=-1)
    n = jnp.maximum(jnp.sum(um), 1)
    m = jnp.maximum(jnp.sum(mm), 1)
    mean_log_loc = jnp.sum(jnp.where(um, jnp.log(loc), 0.0)) / n
    ue = (jnp.log(loc) - mean_log_loc)[:, None]
    glob = jnp.stack([jnp.log(n) / 5.0, jnp.log(m) / 3.0])
    return Features(link, ue, glob, 2.0 * rel, sw, um, mm)


def _masked_mean(x, mask, axis):
    w = mask.astype(x.dtype)
    return jnp.sum(x * w, axis=axis) / jnp.maximum(jnp.sum(w, axis=axis), 1.0)


class Pass(nn.Module):
    """One scoring pass: link features (N, M, F) -> logits (N, M+1)."""

    width: int = 32
    hidden: int = 32

    @nn.compact
    def __call__(self, f: Features, load_feat: jax.Array) -> jax.Array:
        lm = f.ue_mask[:, None] & f.mec_mask[None, :]
        link = jnp.concatenate([f.link, load_feat[..., None]], axis=-1)  # (N, M, 5)
        glob = f.glob
        e = nn.relu(nn.Dense(self.width)(link))
        e = nn.relu(nn.Dense(self.width)(e))  # (N, M, E)
        ue_ctx = _masked_mean(e, lm[..., None], axis=1)  # (N, E)
        mec_ctx = _masked_mean(e, lm[..., None], axis=0)  # (M, E)
        all_ctx = _masked_mean(e, lm[..., None], axis=(0, 1))  # (E,)
        z = BlockDense(self.hidden, name="link_in")(
            [link, e, ue_ctx[:, None, :], mec_ctx[None, :, :], all_ctx, glob]
        )
        z = nn.relu(nn.Dense(self.hidden)(nn.relu(z)))
        s_link = nn.Dense(1)(z)[..., 0]  # (N, M)
        y = BlockDense(self.hidden, name="local_in")([f.ue, ue_ctx, all_ctx, glob])
        y = nn.relu(nn.Dense(self.hidden)(nn.relu(y)))
        s_loc = nn.Dense(1)(y)  # (N, 1)
        s_link = jnp.where(f.mec_mask[None, :], s_link, NEG)
        return jnp.concatenate([s_loc, s_link], axis=1)


class FeaturePolicy(nn.Module):
    """Features of one deployment -> logits of every pass, (rounds, N, M+1)."""

    rounds: int = 2
    width: int = 32
    hidden: int = 32

    @nn.compact
    def __call__(self, f: Features) -> jax.Array:
        load = jnp.zeros(f.rel_sqrt_wf.shape, f.rel_sqrt_wf.dtype)
        out = []
        for r in range(self.rounds):
            logits = Pass(self.width, self.hidden, name=f"pass_{r}")(f, load)
            out.append(logits)
            p = jax.nn.softmax(logits, axis=-1)[:, 1:]  # (N, M) P(a_i = j)
            y = jnp.sum(p * f.sqrt_wf[:, None], axis=0)  # (M,) expected sqrt(wF) load
            load = jnp.log1p(f.rel_sqrt_wf * y[None, :])
        return jnp.stack(out)


def logits_fn(net: FeaturePolicy, params, dep: Deployment, h: jax.Array) -> jax.Array:
    """Final-pass logits (N, M+1) of one deployment."""
    return net.apply(params, features(dep, h))[-1]


def act(net: FeaturePolicy, params, dep: Deployment, h: jax.Array) -> jax.Array:
    """Decision a (N,) int32: per-UE argmax; padded UEs local, padded MECs never chosen."""
    a = jnp.argmax(logits_fn(net, params, dep, h), axis=-1).astype(jnp.int32)
    return jnp.where(dep.ue_mask, a, 0)


def init_params(key: jax.Array, net: FeaturePolicy, dep: Deployment, h: jax.Array):
    return net.init(key, features(dep, h))


def loss(net: FeaturePolicy, params, deps: Deployment, H, A_star, lam) -> jax.Array:
    """Eq. 25 on a batch: cross-entropy against a* (B, N) over the real UEs, mean over passes,
    plus lambda/2 ||theta||^2. Deployments and channels are stacked along B."""
    logits = jax.vmap(lambda d, h: net.apply(params, features(d, h)))(deps, H)  # (B, R, N, M+1)
    logp = jax.nn.log_softmax(logits, axis=-1)
    a = jnp.broadcast_to(A_star[:, None, :, None], (*logp.shape[:3], 1))
    picked = jnp.take_along_axis(logp, a, axis=-1)[..., 0]  # (B, R, N)
    # every pass of every real UE counts once: the mean over passes and real UEs (the mask
    # broadcast over the R passes; dividing by the real UEs alone summed the passes instead)
    w = jnp.broadcast_to(deps.ue_mask[:, None, :], picked.shape).astype(picked.dtype)
    ce = -jnp.sum(picked * w) / jnp.maximum(jnp.sum(w), 1.0)
    return ce + 0.5 * lam * params_norm_sq(params)


__all__ = ["Features", "FeaturePolicy", "act", "features", "init_params", "link_mask", "loss"]
