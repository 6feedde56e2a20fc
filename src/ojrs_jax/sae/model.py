"""2r-SAE: stacked autoencoder compressing h into the DRL state (paper eqs. 19-23, Algorithm 1).

Model (eq. 19-20). x = vec(preprocessed h) in R^(N*M); encoder of `layers - 1` dense layers
r_l = sigma(W_l r_{l-1} + b_l) ending in the latent s in R^latent (the DRL state); the decoder
mirrors the widths and ends in a linear layer (x-hat lives in the preprocessed domain).
`layers` counts the input, as the paper does: AE 60 -> 30 is "2 layers", SAE 60 -> 45 -> 30 is
"3 layers". Hidden widths default to a linear interpolation between N*M and the latent width.

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

Preprocessing (linear, log, minmax) and the metrics live in `ojrs_jax.sae.channel_map`,
incremental learning (Algorithm 1) in `ojrs_jax.sae.incremental`, training (T_SAE
Adam steps, or chunks of them to the plateau of the held-out loss: `max_steps`, `plateau_tol`,
`plateau_decays`) in `ojrs_jax.sae.train`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.core.settings import ConfigError, is_int, is_real
from ojrs_jax.sae.channel_map import (
    PREPROCESS,
    ChannelStats,
    log_channel,
    per_ue_accuracy,
    per_ue_relative_error,
    postprocess,
    reconstruction_accuracy,
    relative_channel,
)

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
STRUCTURES = ("flat", "per_ue")
Params = Any  # flax parameter pytree


# --- configuration ---------------------------------------------------------------------------


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
    restarts: int = 1  # initialisations trained together; the lowest final held-out loss is kept

    def __post_init__(self) -> None:
        choices = {
            "variant": VARIANTS,
            "activation": ACTIVATIONS,
            "preprocess": PREPROCESS,
            "structure": STRUCTURES,
            "l2": L2_SCOPES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"sae.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("l2_mean", "latent_activation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"sae.{name} must be true or false, got {getattr(self, name)!r}")
        if self.layers is None:
            object.__setattr__(self, "layers", 2 if self.variant == "ae" else 3)
        if not is_int(self.layers) or self.layers < 2:
            raise ConfigError(f"sae.layers must be an integer >= 2, got {self.layers!r}")
        for name in (
            "latent",
            "steps",
            "batch_size",
            "memory_size",
            "retrain_steps",
            "sync_period",
            "per_ue_code",
            "restarts",
        ):
            v = getattr(self, name)
            if not is_int(v) or v <= 0:
                raise ConfigError(f"sae.{name} must be a positive integer, got {v!r}")
        for name in ("max_steps", "plateau_decays"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise ConfigError(f"sae.{name} must be an integer >= 0, got {v!r}")
        hidden = self.hidden
        if isinstance(hidden, list | tuple):
            hidden = tuple(hidden)
            object.__setattr__(self, "hidden", hidden)
        if not isinstance(hidden, tuple) or not all(is_int(w) and w > 0 for w in hidden):
            raise ConfigError(f"sae.hidden must be a list of positive integers, got {hidden!r}")
        if hidden and len(hidden) != self.layers - 2:
            raise ConfigError(
                f"sae.hidden must list layers - 2 = {self.layers - 2} widths or none, "
                f"got {list(hidden)!r}"
            )
        for name in ("gamma1", "gamma2", "retrain_learning_rate", "plateau_tol"):
            v = getattr(self, name)
            if not is_real(v) or v < 0:
                raise ConfigError(f"sae.{name} must be a finite number >= 0, got {v!r}")
        if not is_real(self.learning_rate) or self.learning_rate <= 0:
            raise ConfigError(
                f"sae.learning_rate must be a finite positive number, got {self.learning_rate!r}"
            )
        if not is_real(self.error_threshold):
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


# --- metrics ---------------------------------------------------------------------------------


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


def to_numpy(tree: Any) -> Any:
    """Host copy of a pytree of arrays (for writing metrics)."""
    return jax.tree.map(np.asarray, tree)
