"""2r-SAE: stacked autoencoder compressing h into the DRL state (paper eqs. 19-23, Algorithm 1).

Model (eq. 19-20). x = vec(preprocessed h) in R^(N*M); encoder of `layers - 1` dense layers
r_l = sigma(W_l r_{l-1} + b_l) ending in the latent s in R^latent (the DRL state); the decoder
mirrors the widths and ends in a linear layer (x-hat lives in the preprocessed domain).
`layers` counts the input, as the paper does: AE 60 -> 30 is "2 layers", SAE 60 -> 45 -> 30 is
"3 layers". Hidden widths default to a linear interpolation between N*M and the latent width.

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

Structure (`structure`, default "flat"). "flat" is the paper's model on x in R^(N*M) with a code
of `latent` numbers. "per_ue" is ONE autoencoder shared by every UE, applied to each UE's row of
M inputs, with a code of `per_ue_code` = k numbers per UE: the state has N*k numbers (30 at
N = 30, k = 1, the paper's width), and a policy can read UE i's code as UE i's features.

Loss (eq. 23), per channel, averaged over the batch (variant `2r_sae`; `ae` and `sae` use MSE only):
    L = 1/(N M) sum_ij (x_ij - xhat_ij)^2
        + gamma1/2 sum_ij (h_ij / max_k h_ik - hhat_ij / max_k hhat_ik)^2
        + gamma2/2 ||theta||^2
The absolute term is the MSE in the preprocessed domain; the relative term is in the h domain,
computed as exp(ln h_ij - max_k ln h_ik) (per-UE scale cancels; a reconstruction that undershoots
to x <= 0 is floored at 1e-12 first). ||theta||^2 sums the squares of the weights (`l2: weights`)
or of all parameters (`l2: all`); with `l2_mean` (the default) it is divided by their count,
because the literal sum with gamma2 = 0.08 outweighs the MSE of normalised data many times over
(measured at N = 30, M = 2, T_SAE = 500: held-out Acc 0.45 with the sum, 0.65 per parameter).

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
- compression ratio CR = 1 - latent / (N M).

What the code can hold. Under this channel model the fading l_ij is i.i.d. across UEs and MECs, so
h has N*M independent random entries and nothing but their means is shared between epochs. A
code of 30 numbers cannot carry 60 independent ones; which 30 it keeps is the trade-off: MSE on
h / gbar keeps the strong links (high Acc), eq. 23's relative term spends the code on the
per-UE ratios rho (low relative error, lower Acc). The best linear code (PCA) reaches Acc ~0.90
at M = 2; the CLI reports it as a yardstick.

Training budget. `train_sae` takes T_SAE = `steps` Adam steps (the paper's 500, which leaves the
models undertrained: Acc 0.87 at M = 1, where the identity is representable). With `max_steps`
> 0, `train_sae_converged` runs chunks of `steps` steps until one chunk lowers the held-out loss
(mean of its last tenth of steps) by at most `plateau_tol` (relative); then the Adam step size is
cut 5x and training goes on, `plateau_decays` times, and the next plateau (or `max_steps`) ends it.

Incremental learning (Alg. 1, Sec. IV.B): a FIFO memory of fixed size takes a new x only when its
reconstruction error (MSE in the x domain) exceeds `error_threshold`; every step trains the SAE
for `retrain_steps` Adam steps on memory samples, and every `sync_period` steps copies theta_SAE
to the online encoder, which produces the DRL state. `retrain_learning_rate` (0: `learning_rate`)
sets its Adam step size: after training to the plateau, where the step size was cut, the full
step size moves the code the policy reads at every sync.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ojrs_jax.scenario import ConfigError, Scenario, path_gain, sample_channels

VARIANTS = ("ae", "sae", "2r_sae")
ACTIVATIONS = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "sigmoid": nn.sigmoid,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "leaky_relu": nn.leaky_relu,
    "softplus": nn.softplus,
}
L2_SCOPES = ("weights", "all")
PREPROCESS = ("linear", "log", "minmax")
STRUCTURES = ("flat", "per_ue")
MINMAX_CHANNELS = 4096  # channels of the fixed reference sample that sets the minmax bounds
EULER_GAMMA = 0.5772156649015329
LOG_EXP_STD = math.pi / math.sqrt(6.0)  # std of ln l, l ~ Exp(1)
_FLOOR = 1e-12  # floor of x before the log in the linear map (reconstructions can be <= 0)

Params = Any  # flax parameter pytree


# --- configuration ---------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class SAEConfig:
    """Typed, validated settings of one autoencoder (the Hydra `sae` group). Hashable: static."""

    variant: str = "2r_sae"  # ae | sae (MSE loss) | 2r_sae (eq. 23)
    layers: int | None = None  # encoder layers counting the input; None: AE 2, else 3 (paper)
    hidden: tuple[int, ...] = ()  # hidden widths (layers - 2 of them); () = interpolate
    latent: int = 30  # width of the code s (the DRL state)
    activation: str = "elu"  # sigma of eq. 19
    latent_activation: bool = True  # apply sigma to the code too (eq. 19 literally)
    gamma1: float = 0.5  # weight of the relative term (eq. 23)
    gamma2: float = 0.08  # weight of the L2 term (eq. 23)
    l2: str = "weights"  # weights | all: which parameters the L2 term covers
    l2_mean: bool = True  # divide ||theta||^2 by the number of parameters it covers
    preprocess: str = "linear"  # linear (h / mean gain) | log (standardised ln h) | minmax
    structure: str = "flat"  # flat: one SAE on vec(h) | per_ue: one SAE shared by all UE rows
    per_ue_code: int = 1  # per_ue: code width k per UE (the state has N*k numbers)
    learning_rate: float = 3e-3  # Adam step size beta (eq. 22)
    steps: int = 500  # T_SAE: Adam steps of one training run
    batch_size: int = 512  # channels per Adam step
    memory_size: int = 1024  # capacity of the incremental-learning FIFO memory
    error_threshold: float = 0.15  # a new x enters the memory when its MSE exceeds this
    retrain_steps: int = 1  # Adam steps on memory samples per incremental step
    retrain_learning_rate: float = 0.0  # Adam step size of incremental learning; 0: learning_rate
    sync_period: int = 10  # incremental steps between copies of theta_SAE to the online encoder
    max_steps: int = 0  # > 0: train in chunks of `steps` until the plateau rule or this many
    plateau_tol: float = 0.01  # a plateau: a chunk lowers the held-out loss by at most this
    plateau_decays: int = 2  # on a plateau, cut the step size 5x this many times, then stop

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"sae.variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"sae.activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.preprocess not in PREPROCESS:
            raise ConfigError(
                f"sae.preprocess must be one of {', '.join(PREPROCESS)}, got {self.preprocess!r}"
            )
        if self.structure not in STRUCTURES:
            raise ConfigError(
                f"sae.structure must be one of {', '.join(STRUCTURES)}, got {self.structure!r}"
            )
        if self.l2 not in L2_SCOPES:
            raise ConfigError(f"sae.l2 must be one of {', '.join(L2_SCOPES)}, got {self.l2!r}")
        for name in ("l2_mean", "latent_activation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"sae.{name} must be true or false, got {getattr(self, name)!r}")
        if self.layers is None:
            object.__setattr__(self, "layers", 2 if self.variant == "ae" else 3)
        if not _is_int(self.layers) or self.layers < 2:
            raise ConfigError(f"sae.layers must be an integer >= 2, got {self.layers!r}")
        for name in (
            "latent",
            "steps",
            "batch_size",
            "memory_size",
            "retrain_steps",
            "sync_period",
            "per_ue_code",
        ):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise ConfigError(f"sae.{name} must be a positive integer, got {v!r}")
        hidden = self.hidden
        if isinstance(hidden, list | tuple):
            hidden = tuple(hidden)
            object.__setattr__(self, "hidden", hidden)
        if not isinstance(hidden, tuple) or not all(_is_int(w) and w > 0 for w in hidden):
            raise ConfigError(f"sae.hidden must be a list of positive integers, got {hidden!r}")
        if hidden and len(hidden) != self.layers - 2:
            raise ConfigError(
                f"sae.hidden must list layers - 2 = {self.layers - 2} widths or none, "
                f"got {list(hidden)!r}"
            )
        for name in ("gamma1", "gamma2"):
            v = getattr(self, name)
            if not _is_real(v) or v < 0:
                raise ConfigError(f"sae.{name} must be a finite number >= 0, got {v!r}")
        rl = self.retrain_learning_rate
        if not _is_real(rl) or rl < 0:
            raise ConfigError(f"sae.retrain_learning_rate must be a finite number >= 0, got {rl!r}")
        if not _is_real(self.learning_rate) or self.learning_rate <= 0:
            raise ConfigError(
                f"sae.learning_rate must be a finite positive number, got {self.learning_rate!r}"
            )
        if not _is_int(self.plateau_decays) or self.plateau_decays < 0:
            raise ConfigError(
                f"sae.plateau_decays must be an integer >= 0, got {self.plateau_decays!r}"
            )
        if not _is_int(self.max_steps) or self.max_steps < 0:
            raise ConfigError(f"sae.max_steps must be an integer >= 0, got {self.max_steps!r}")
        if not _is_real(self.plateau_tol) or self.plateau_tol < 0:
            raise ConfigError(
                f"sae.plateau_tol must be a finite number >= 0, got {self.plateau_tol!r}"
            )
        if not _is_real(self.error_threshold):
            raise ConfigError(
                f"sae.error_threshold must be a finite number, got {self.error_threshold!r}"
            )

    @classmethod
    def from_mapping(cls, m: dict) -> SAEConfig:
        """Build from a plain mapping (e.g. the resolved `sae` node), rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"unknown sae setting {unknown[0]!r}")
        return cls(**m)

    @property
    def uses_2r(self) -> bool:
        """Whether the loss is eq. 23 (relative and L2 terms) rather than plain MSE."""
        return self.variant == "2r_sae"

    def state_width(self, n_ue: int) -> int:
        """Width of the code s, the DRL state: `latent` (flat) or N * per_ue_code (per_ue)."""
        return self.latent if self.structure == "flat" else n_ue * self.per_ue_code

    def model_widths(self, n_ue: int, n_mec: int) -> tuple[int, int]:
        """(input, code) widths of the dense autoencoder: (N*M, latent) flat, (M, k) per UE."""
        if self.structure == "flat":
            return n_ue * n_mec, self.latent
        return n_mec, self.per_ue_code


def encoder_widths(cfg: SAEConfig, n_in: int) -> tuple[int, ...]:
    """Output widths of the encoder's dense layers, ending in the code width (e.g. (45, 30)).

    n_in is the dense model's input: N*M for `flat`, M for `per_ue` (code width per_ue_code).
    """
    code = cfg.latent if cfg.structure == "flat" else cfg.per_ue_code
    if cfg.hidden:
        return (*cfg.hidden, code)
    steps = cfg.layers - 1
    mid = tuple(round(n_in + (code - n_in) * k / steps) for k in range(1, steps))
    return (*mid, code)


def compression_ratio(n_ue: int, n_mec: int, latent: int = 30) -> float:
    """CR = 1 - latent / (N M): the share of the input width the code removes."""
    return 1.0 - latent / (n_ue * n_mec)


# --- preprocessing ---------------------------------------------------------------------------


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


# --- model (eqs. 19-20) ----------------------------------------------------------------------


class SAE(nn.Module):
    """Symmetric stacked autoencoder: dense encoder to `widths[-1]`, mirrored decoder to n_in."""

    n_in: int
    widths: tuple[int, ...]  # encoder output widths, the last is the latent width
    activation: str = "elu"
    latent_activation: bool = True  # sigma on the code layer as well

    def setup(self) -> None:
        self.enc = [nn.Dense(w) for w in self.widths]
        dec = (*self.widths[-2::-1], self.n_in)  # mirror: 45 -> 60 for widths (45, 30)
        self.dec = [nn.Dense(w) for w in dec]

    def encode(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.enc[:-1]:
            x = act(layer(x))
        x = self.enc[-1](x)
        return act(x) if self.latent_activation else x

    def decode(self, z: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.dec[:-1]:
            z = act(layer(z))
        return self.dec[-1](z)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


def make_sae(cfg: SAEConfig, n_in: int) -> SAE:
    """The flax module of `cfg` for dense inputs of width n_in (N*M flat, M per UE)."""
    return SAE(
        n_in=n_in,
        widths=encoder_widths(cfg, n_in),
        activation=cfg.activation,
        latent_activation=cfg.latent_activation,
    )


def init_sae(key: jax.Array, cfg: SAEConfig, n_in: int, n_mec: int | None = None) -> Params:
    """Random parameters theta_SAE (the flax `params` collection) for inputs x of width n_in = N*M.

    `per_ue` builds one network on a UE's row of M gains, so it needs n_mec.
    """
    if cfg.structure == "per_ue":
        if n_mec is None or n_in % n_mec:
            raise ValueError(f"structure per_ue needs n_mec dividing n_in, got {n_mec}, {n_in}")
        n_in = n_mec
    return make_sae(cfg, n_in).init(key, jnp.zeros((1, n_in), jnp.float32))["params"]


def _n_in(params: Params) -> int:
    """Input width of the dense model (N*M flat, M per UE)."""
    return params[f"dec_{len(params) // 2 - 1}"]["kernel"].shape[-1]


def _rows(cfg: SAEConfig, x: jax.Array, width: int) -> jax.Array:
    """per_ue: x (..., N*width) -> rows (..., N, width); flat: x unchanged."""
    if cfg.structure == "flat":
        return x
    return x.reshape(*x.shape[:-1], x.shape[-1] // width, width)


def _flat(cfg: SAEConfig, y: jax.Array) -> jax.Array:
    """per_ue: rows (..., N, w) -> (..., N*w); flat: unchanged."""
    return y if cfg.structure == "flat" else y.reshape(*y.shape[:-2], -1)


def encode(params: Params, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """Code s of inputs x (..., N*M): the DRL state, (..., latent) flat or (..., N*k) per UE."""
    m = _n_in(params)
    rows = _rows(cfg, x, m)
    z = make_sae(cfg, m).apply({"params": params}, rows, method=SAE.encode)
    return _flat(cfg, z)


def decode(params: Params, cfg: SAEConfig, z: jax.Array) -> jax.Array:
    """Reconstruction x-hat (..., N*M) from codes z (..., state width)."""
    m = _n_in(params)
    rows = _rows(cfg, z, cfg.per_ue_code)
    return _flat(cfg, make_sae(cfg, m).apply({"params": params}, rows, method=SAE.decode))


def reconstruct(params: Params, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """x-hat = decoder(encoder(x)), shape of x."""
    m = _n_in(params)
    return _flat(cfg, make_sae(cfg, m).apply({"params": params}, _rows(cfg, x, m)))


# --- loss (eq. 23) ---------------------------------------------------------------------------


def relative_channel(log_h: jax.Array) -> jax.Array:
    """rho_ij = h_ij / max_k h_ik from ln h (..., N, M), computed without overflow."""
    return jnp.exp(log_h - jnp.max(log_h, axis=-1, keepdims=True))


def l2_norm_sq(params: Params, cfg: SAEConfig) -> jax.Array:
    """||theta||^2 over the weights (or all parameters), optionally per parameter."""
    leaves = [
        v
        for path, v in jax.tree_util.tree_leaves_with_path(params)
        if cfg.l2 == "all" or getattr(path[-1], "key", None) == "kernel"
    ]
    total = sum(jnp.sum(jnp.square(v)) for v in leaves)
    if cfg.l2_mean:
        total = total / sum(v.size for v in leaves)
    return total


def loss_terms(
    params: Params, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> dict[str, jax.Array]:
    """The three terms of eq. 23 for a batch x (B, N*M): mse, rel (per-channel sums) and l2."""
    chex.assert_rank(x, 2)
    xh = reconstruct(params, cfg, x)
    mse = jnp.mean(jnp.square(x - xh))
    rho = relative_channel(log_channel(x, stats))
    rho_h = relative_channel(log_channel(xh, stats))
    rel = jnp.mean(jnp.sum(jnp.square(rho - rho_h), axis=(-2, -1)))
    return {"mse": mse, "rel": rel, "l2": l2_norm_sq(params, cfg)}


def total_loss(terms: dict[str, jax.Array], cfg: SAEConfig) -> jax.Array:
    """Combine the terms: eq. 23 for `2r_sae`, the MSE alone for `ae` and `sae`."""
    if not cfg.uses_2r:
        return terms["mse"]
    return terms["mse"] + 0.5 * cfg.gamma1 * terms["rel"] + 0.5 * cfg.gamma2 * terms["l2"]


def sae_loss(params: Params, cfg: SAEConfig, x: jax.Array, stats: ChannelStats) -> jax.Array:
    """Scalar training loss of a batch x (B, N*M) (eq. 23 or MSE, by `cfg.variant`)."""
    return total_loss(loss_terms(params, cfg, x, stats), cfg)


# --- training (Alg. 1, lines 5-10) -----------------------------------------------------------


def optimizer(cfg: SAEConfig) -> optax.GradientTransformation:
    """Adam with the configured step size (eq. 22 with an adaptive step), injected into the state
    so that `run_to_plateau` can cut it without recompiling."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=cfg.learning_rate)


def scale_learning_rate(opt_state: Any, factor: float) -> Any:
    """The Adam state of `optimizer` with its step size multiplied by `factor`."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = hp["learning_rate"] * factor
    return opt_state._replace(hyperparams=hp)


def _adam_step(
    params: Params, opt_state: optax.OptState, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    def f(p):
        terms = loss_terms(p, cfg, x, stats)
        return total_loss(terms, cfg), terms

    (loss, terms), grads = jax.value_and_grad(f, has_aux=True)(params)
    updates, opt_state = optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": loss, **terms}


def _scan_steps(key, cfg, params, opt_state, x, stats, x_test):
    chex.assert_rank(x, 2)

    def body(carry, k):
        params, opt_state = carry
        idx = jax.random.randint(k, (cfg.batch_size,), 0, x.shape[0])
        params, opt_state, out = _adam_step(params, opt_state, cfg, x[idx], stats)
        if x_test is not None:
            out["test_loss"] = sae_loss(params, cfg, x_test, stats)
            xh = reconstruct(params, cfg, x_test)
            out["test_acc"] = reconstruction_accuracy(
                postprocess(x_test, stats), postprocess(xh, stats)
            )
        return (params, opt_state), out

    (params, opt_state), metrics = jax.lax.scan(
        body, (params, opt_state), jax.random.split(key, cfg.steps)
    )
    return params, opt_state, metrics


@functools.partial(jax.jit, static_argnames=("cfg",))
def train_sae(
    key: jax.Array,
    cfg: SAEConfig,
    params: Params,
    x: jax.Array,
    stats: ChannelStats,
    x_test: jax.Array | None = None,
) -> tuple[Params, dict[str, jax.Array]]:
    """`cfg.steps` Adam steps on minibatches of x (E, N*M), as one scan.

    Returns the trained parameters and metrics stacked over steps (each (steps,)): the minibatch
    `loss` before the step and its terms `mse`, `rel`, `l2`; with x_test, the `test_loss` and the
    held-out `test_acc` after the step.
    """
    params, _, metrics = _scan_steps(
        key, cfg, params, optimizer(cfg).init(params), x, stats, x_test
    )
    return params, metrics


@functools.partial(jax.jit, static_argnames=("cfg",))
def train_chunk(
    key: jax.Array,
    cfg: SAEConfig,
    params: Params,
    opt_state: optax.OptState,
    x: jax.Array,
    stats: ChannelStats,
    x_test: jax.Array,
) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    """`train_sae` continued from an Adam state: one chunk of `cfg.steps` steps of a longer run."""
    return _scan_steps(key, cfg, params, opt_state, x, stats, x_test)


def plateau_reached(val_losses: list[float], tol: float) -> bool:
    """The stopping rule: the last chunk lowered the held-out loss by at most `tol` (relative)."""
    if len(val_losses) < 2:
        return False
    prev, last = val_losses[-2], val_losses[-1]
    return prev - last <= tol * abs(prev)


def run_to_plateau(
    key: jax.Array, cfg: SAEConfig, chunk: Any, carry: Any, decay: Any = None
) -> tuple[Any, dict[str, np.ndarray], int]:
    """Host loop of training chunks until the plateau rule ends it or `cfg.max_steps` steps.

    `chunk(key, carry) -> (carry, metrics)` runs `cfg.steps` Adam steps; metrics["test_loss"]
    (..., steps) may carry leading axes (vmapped seeds): the rule reads the mean over them of
    the chunk's last 10% of steps. On a plateau (`plateau_reached`), `decay(carry, 0.2)` cuts
    the step size and training goes on, `cfg.plateau_decays` times; the next plateau stops it.
    Returns the carry, the curves joined along the step axis, and the number of steps taken.
    With `max_steps` 0 it runs one chunk (the fixed T_SAE).
    """
    n_chunks = max(1, -(-cfg.max_steps // cfg.steps)) if cfg.max_steps else 1
    tail = max(1, cfg.steps // 10)
    curves, vals, decays = [], [], 0
    for _ in range(n_chunks):
        key, k = jax.random.split(key)
        carry, m = chunk(k, carry)
        curves.append(jax.tree.map(np.asarray, m))
        vals.append(float(np.mean(curves[-1]["test_loss"][..., -tail:])))
        if plateau_reached(vals, cfg.plateau_tol):
            if decay is None or decays >= cfg.plateau_decays:
                break
            carry, decays, vals = decay(carry, 0.2), decays + 1, vals[-1:]
    joined = {k: np.concatenate([c[k] for c in curves], axis=-1) for k in curves[0]}
    return carry, joined, len(curves) * cfg.steps


def decay_carry(carry: tuple[Params, Any], factor: float) -> tuple[Params, Any]:
    """`run_to_plateau`'s `decay` for a (params, Adam state) carry."""
    return carry[0], scale_learning_rate(carry[1], factor)


def train_sae_converged(
    key: jax.Array,
    cfg: SAEConfig,
    params: Params,
    x: jax.Array,
    stats: ChannelStats,
    x_val: jax.Array,
) -> tuple[Params, dict[str, np.ndarray], int]:
    """Train one SAE to the plateau of its held-out loss on x_val (see `run_to_plateau`)."""

    def chunk(k, carry):
        p, o, m = train_chunk(k, cfg, carry[0], carry[1], x, stats, x_val)
        return (p, o), m

    (params, _), curves, steps = run_to_plateau(
        key, cfg, chunk, (params, optimizer(cfg).init(params)), decay_carry
    )
    return params, curves, steps


# --- metrics ---------------------------------------------------------------------------------


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


@functools.partial(jax.jit, static_argnames=("cfg",))
def evaluate(
    params: Params, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> dict[str, jax.Array]:
    """Metrics on held-out inputs x (E, N*M): acc, per_ue_acc, rel_err, nmse_db, loss terms."""
    xh = reconstruct(params, cfg, x)
    h, hh = postprocess(x, stats), postprocess(xh, stats)
    terms = loss_terms(params, cfg, x, stats)
    nmse = jnp.mean(jnp.sum(jnp.square(h - hh), (-2, -1)) / jnp.sum(jnp.square(h), (-2, -1)))
    return {
        "acc": reconstruction_accuracy(h, hh),
        "per_ue_acc": per_ue_accuracy(h, hh),
        "rel_err": per_ue_relative_error(h, hh),
        "nmse_db": 10.0 * jnp.log10(nmse),
        "loss": total_loss(terms, cfg),
        **terms,
    }


# --- incremental learning (Alg. 1, lines 3-4 and 11) -----------------------------------------


@struct.dataclass
class Memory:
    """Fixed-size FIFO memory of preprocessed channels (ring buffer)."""

    data: chex.Array  # (C, D) stored inputs x; rows >= count are unused while not full
    head: chex.Array  # () int32 slot the next entry goes to (the oldest entry once full)
    count: chex.Array  # () int32 number of valid rows, <= C


def memory_init(capacity: int, dim: int) -> Memory:
    """An empty memory of `capacity` rows of width `dim` (both Python ints)."""
    if capacity <= 0 or dim <= 0:
        raise ValueError(f"memory capacity and dim must be positive, got {capacity}, {dim}")
    z = jnp.zeros((), jnp.int32)
    return Memory(data=jnp.zeros((capacity, dim), jnp.float32), head=z, count=z)


def memory_add(
    mem: Memory, x: jax.Array, err: jax.Array, threshold: float | jax.Array
) -> tuple[Memory, jax.Array]:
    """Error check then FIFO insert: x (D,) enters (overwriting the oldest when full) iff err >
    threshold. Returns the new memory and whether x entered."""
    chex.assert_shape(x, mem.data.shape[1:])
    cap = mem.data.shape[0]
    add = err > threshold
    row = jnp.where(add, x.astype(mem.data.dtype), mem.data[mem.head])
    data = mem.data.at[mem.head].set(row)
    head = jnp.where(add, (mem.head + 1) % cap, mem.head)
    count = jnp.where(add, jnp.minimum(mem.count + 1, cap), mem.count)
    return Memory(data=data, head=head, count=count), add


def memory_add_batch(
    mem: Memory, xs: jax.Array, errs: jax.Array, threshold: float | jax.Array
) -> tuple[Memory, jax.Array]:
    """`memory_add` for rows xs (E, D) with errors errs (E,), in order; returns added (E,)."""

    def body(m, xe):
        return memory_add(m, xe[0], xe[1], threshold)

    return jax.lax.scan(body, mem, (xs, errs))


def memory_sample(key: jax.Array, mem: Memory, batch: int) -> jax.Array:
    """Uniform rows (batch, D) from the valid part of the memory (row 0 repeats while empty)."""
    idx = jax.random.randint(key, (batch,), 0, jnp.maximum(mem.count, 1))
    return mem.data[idx]


def reconstruction_error(params: Params, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """Error check value: MSE of the reconstruction in the x domain, per input (...,)."""
    return jnp.mean(jnp.square(x - reconstruct(params, cfg, x)), axis=-1)


@struct.dataclass
class IncrementalState:
    """The SAE under incremental learning, its memory and the online encoder it feeds."""

    params: Params  # theta_SAE, trained on the memory
    opt_state: optax.OptState  # Adam moments of theta_SAE
    online: Params  # online encoder's copy of theta_SAE (synchronised every sync_period)
    memory: Memory  # FIFO of inputs whose error exceeded the threshold
    step: chex.Array  # () int32 incremental steps taken


def incremental_init(cfg: SAEConfig, params: Params, n_in: int) -> IncrementalState:
    """Start incremental learning from (pre-trained or fresh) parameters, empty memory."""
    opt_state = optimizer(cfg).init(params)
    if cfg.retrain_learning_rate:
        opt_state = scale_learning_rate(opt_state, cfg.retrain_learning_rate / cfg.learning_rate)
    return IncrementalState(
        params=params,
        opt_state=opt_state,
        online=params,
        memory=memory_init(cfg.memory_size, n_in),
        step=jnp.zeros((), jnp.int32),
    )


def incremental_step(
    key: jax.Array, state: IncrementalState, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> tuple[IncrementalState, dict[str, jax.Array]]:
    """One online epoch for a new input x (N*M,): error check, FIFO add, retrain, periodic sync.

    Retraining takes `cfg.retrain_steps` Adam steps on memory minibatches (skipped while the
    memory is empty); the online encoder receives theta_SAE when the step count reaches a
    multiple of `cfg.sync_period`. Callable inside `lax.scan`.
    """
    chex.assert_shape(x, state.memory.data.shape[1:])
    err = reconstruction_error(state.params, cfg, x)
    memory, added = memory_add(state.memory, x, err, cfg.error_threshold)

    def train(carry, k):
        params, opt_state = carry
        batch = memory_sample(k, memory, cfg.batch_size)
        new_p, new_o, out = _adam_step(params, opt_state, cfg, batch, stats)
        keep = memory.count > 0
        params, opt_state = jax.tree.map(
            lambda a, b: jnp.where(keep, a, b), (new_p, new_o), (params, opt_state)
        )
        return (params, opt_state), out["loss"]

    (params, opt_state), losses = jax.lax.scan(
        train, (state.params, state.opt_state), jax.random.split(key, cfg.retrain_steps)
    )
    step = state.step + 1
    sync = step % cfg.sync_period == 0
    online = jax.tree.map(lambda p, o: jnp.where(sync, p, o), params, state.online)
    new = IncrementalState(
        params=params, opt_state=opt_state, online=online, memory=memory, step=step
    )
    return new, {"err": err, "added": added, "loss": losses[-1], "synced": sync}


def online_encode(state: IncrementalState, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """DRL state s (..., latent) from the online encoder."""
    return encode(state.online, cfg, x)


def to_numpy(tree: Any) -> Any:
    """Host copy of a pytree of arrays (for writing metrics)."""
    return jax.tree.map(np.asarray, tree)
