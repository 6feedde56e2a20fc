"""The map between channels h and the 2r-SAE's input x, and reconstruction metrics in h.

Preprocessing (`preprocess`, default "linear"). h_ij = g_ij l_ij with g_ij = beta0 / R_ij^2 the
path gain and l_ij ~ Exp(1). "linear" divides by the scenario's mean path gain,
    x_ij = h_ij / gbar,   gbar = mean_kl g_kl,
so x has mean 1 over entries and eq. 23's absolute term is literally the MSE of (scaled) h. "log"
standardises each entry exactly, x_ij = (ln h_ij - ln g_ij + gamma_E) / (pi / sqrt 6) (ln l has
mean -gamma_E and variance pi^2/6); it weighs deep fades of weak links like strong links, which
the h-domain metrics below do not reward. "minmax" scales each link to [0, 1] by its min and max
over training channels, x_ij = (h_ij - min_ij) / (max_ij - min_ij); the bounds come from a fixed
sample of the deployment (`minmax_reference`), so training and decide time derive the same ones
without storing them. The maps live in `ChannelStats`, work on any batch shape (..., N, M) and
have an inverse, so the loss and the metrics can return to h.

Metrics (all on h in physical units, over held-out channels):
- reconstruction accuracy Acc = 1 - sum |h - hhat| / sum h over all entries: one minus the
  weighted absolute percentage error (WAPE). The per-entry mean of |h - hhat| / h is not used:
  under Rayleigh fading E[1/l] is infinite, so that average is ruled by the few deepest fades.
  Acc weighs entries by their gain; `per_ue_accuracy` (each UE's error relative to its own
  sum_j h_ij, averaged over UEs) is reported beside it.
- per-UE relative error: mean over channels, UEs and MECs of |rho_ij - rhohat_ij|, with
  rho_ij = h_ij / max_k h_ik (the quantity eq. 23's relative term protects).
- per-entry absolute error for the histograms of Figs. 5-6: |h_ij - hhat_ij| / gbar, in units
  of the mean path gain (the same weighting as Acc).
- compression ratio CR = 1 - latent / (N M) (the state's width: N * per_ue_code per UE).

What the code can hold. Under the channel model of Sec. III the fading l_ij is i.i.d. across
UEs and MECs, so h has N*M independent random entries and nothing but their means is shared
between epochs. A code of 30 numbers cannot carry 60 independent ones; which 30 it keeps is the
trade-off: MSE on h / gbar keeps the strong links (high Acc), eq. 23's relative term spends the
code on the per-UE ratios rho (low relative error, lower Acc). The best linear code (PCA)
reaches Acc ~0.90 at M = 2; `ojrs-sae` reports it as a yardstick.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ojrs_jax.core.settings import ConfigError
from ojrs_jax.system.scenario import Scenario, path_gain, sample_channels

PREPROCESS = ("linear", "log", "minmax")
MINMAX_CHANNELS = 4096  # channels of the fixed reference sample that sets the minmax bounds
EULER_GAMMA = 0.5772156649015329
LOG_EXP_STD = math.pi / math.sqrt(6.0)  # std of ln l, l ~ Exp(1)
_FLOOR = 1e-12  # floor of x before the log in the linear map (reconstructions can be <= 0)


@struct.dataclass
class ChannelStats:
    """Per-entry affine map between h (or ln h) and the network's input x."""

    gain: chex.Array  # (N, M) path gain g_ij = E[h_ij]
    loc: chex.Array  # (N, M) log: mean of ln h_ij; minmax: per-link min of h; linear: zeros
    scale: chex.Array  # (N, M) log: std of ln h_ij; minmax: per-link max - min; linear: gbar
    kind: str = struct.field(pytree_node=False, default="linear")  # linear | log | minmax


def minmax_reference(scn: Scenario) -> jax.Array:
    """The fixed sample (MINMAX_CHANNELS, N, M) whose per-link min and max define `minmax`.

    It depends on the deployment only (a constant key), so training, `ojrs-decide` and a
    reloaded run derive the same bounds without storing them.
    """
    return sample_channels(jax.random.key(20_231_129), scn, MINMAX_CHANNELS)


def channel_stats(scn: Scenario, kind: str = "linear", h: jax.Array | None = None) -> ChannelStats:
    """Statistics of h for the preprocessing `kind`.

    linear and log are exact under the scenario's Rayleigh model (no data needed); minmax takes
    the per-link min and max of the training channels h (E, N, M), by default of the fixed
    sample `minmax_reference(scn)`.
    """
    g = path_gain(scn)
    if kind == "linear":
        return ChannelStats(g, jnp.zeros_like(g), jnp.full_like(g, jnp.mean(g)), kind)
    if kind == "log":
        return ChannelStats(g, jnp.log(g) - EULER_GAMMA, jnp.full_like(g, LOG_EXP_STD), kind)
    if kind == "minmax":
        h = minmax_reference(scn) if h is None else h
        chex.assert_rank(h, 3)
        lo, hi = jnp.min(h, axis=0), jnp.max(h, axis=0)
        return ChannelStats(g, lo, hi - lo, kind)
    raise ConfigError(f"sae.preprocess must be one of {', '.join(PREPROCESS)}, got {kind!r}")


def _stats(s: Scenario | ChannelStats) -> ChannelStats:
    return channel_stats(s) if isinstance(s, Scenario) else s


def preprocess(h: jax.Array, scn_or_stats: Scenario | ChannelStats) -> jax.Array:
    """Channels h (..., N, M) -> inputs x (..., N*M), row-major (UE-major).

    linear: h / gbar; log: (ln h - loc) / scale; minmax: (h - min) / (max - min) per link.
    """
    st = _stats(scn_or_stats)
    chex.assert_equal_shape_suffix((h, st.loc), 2)
    if st.kind == "log":
        x = (jnp.log(h) - st.loc) / st.scale
    elif st.kind == "minmax":
        x = (h - st.loc) / st.scale
    else:
        x = h / st.scale
    return x.reshape(*h.shape[:-2], -1)


def log_channel(x: jax.Array, scn_or_stats: Scenario | ChannelStats) -> jax.Array:
    """Inverse of `preprocess` in the log domain: x (..., N*M) -> ln h (..., N, M).

    For `linear` and `minmax`, a reconstruction h <= 0 (it can undershoot) is floored at
    1e-12 (times the scale) first.
    """
    st = _stats(scn_or_stats)
    n, m = st.loc.shape
    chex.assert_axis_dimension(x, -1, n * m)
    x = x.reshape(*x.shape[:-1], n, m)
    if st.kind == "log":
        return x * st.scale + st.loc
    if st.kind == "minmax":
        return jnp.log(jnp.maximum(x * st.scale + st.loc, _FLOOR * st.scale))
    return jnp.log(jnp.maximum(x, _FLOOR) * st.scale)


def postprocess(x: jax.Array, scn_or_stats: Scenario | ChannelStats) -> jax.Array:
    """Inverse of `preprocess`: x (..., N*M) -> h (..., N, M)."""
    return jnp.exp(log_channel(x, scn_or_stats))


def relative_channel(log_h: jax.Array) -> jax.Array:
    """rho_ij = h_ij / max_k h_ik from ln h (..., N, M), computed without overflow."""
    return jnp.exp(log_h - jnp.max(log_h, axis=-1, keepdims=True))


def reconstruction_accuracy(h: jax.Array, h_hat: jax.Array) -> jax.Array:
    """Acc = 1 - sum |h - hhat| / sum h over all entries (one minus WAPE)."""
    return 1.0 - jnp.sum(jnp.abs(h - h_hat)) / jnp.sum(h)


def per_ue_accuracy(h: jax.Array, h_hat: jax.Array) -> jax.Array:
    """1 - mean over channels and UEs of sum_j |h_ij - hhat_ij| / sum_j h_ij; h (..., N, M)."""
    return 1.0 - jnp.mean(jnp.sum(jnp.abs(h - h_hat), -1) / jnp.sum(h, -1))


def per_ue_relative_error(h: jax.Array, h_hat: jax.Array) -> jax.Array:
    """Mean |h_ij / max_k h_ik - hhat_ij / max_k hhat_ik| over all entries; h (..., N, M)."""
    return jnp.mean(jnp.abs(relative_channel(jnp.log(h)) - relative_channel(jnp.log(h_hat))))


def normalised_errors(h: jax.Array, h_hat: jax.Array, stats: ChannelStats) -> jax.Array:
    """Per-entry absolute error |h - hhat| / gbar (..., N, M), gbar the mean path gain."""
    return jnp.abs(h - h_hat) / jnp.mean(stats.gain)
