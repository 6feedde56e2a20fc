"""2r-SAE: stacked autoencoder compressing h into the DRL state (paper eqs. 19-23, Algorithm 1).

Model (eq. 19-20). x = vec(preprocessed h) in R^(N*M); encoder of `layers - 1` dense layers
r_l = sigma(W_l r_{l-1} + b_l) ending in the latent s in R^latent (the DRL state); the decoder
mirrors the widths and ends in a linear layer (x-hat lives in the preprocessed domain).
`layers` counts the input, as the paper does: AE 60 -> 30 is "2 layers", SAE 60 -> 45 -> 30 is
"3 layers". Hidden widths default to a linear interpolation between N*M and the latent width.

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

Preprocessing and the metrics live in `ojrs_jax.channel_map`, incremental learning (Algorithm 1)
in `ojrs_jax.incremental`.
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
import optax

from ojrs_jax.channel_map import (  # noqa: F401  (re-exported: sae.preprocess, sae.evaluate's metrics)
    EULER_GAMMA,
    LOG_EXP_STD,
    PREPROCESS,
    ChannelStats,
    channel_stats,
    log_channel,
    normalised_errors,
    per_ue_accuracy,
    per_ue_relative_error,
    postprocess,
    preprocess,
    reconstruction_accuracy,
    relative_channel,
)
from ojrs_jax.config import ConfigError, is_int, is_real

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
    preprocess: str = "linear"  # linear (h / mean gain) | log (standardised ln h)
    learning_rate: float = 3e-3  # Adam step size beta (eq. 22)
    steps: int = 500  # T_SAE: Adam steps of one training run
    batch_size: int = 512  # channels per Adam step
    memory_size: int = 1024  # capacity of the incremental-learning FIFO memory
    error_threshold: float = 0.15  # a new x enters the memory when its MSE exceeds this
    retrain_steps: int = 1  # Adam steps on memory samples per incremental step
    sync_period: int = 10  # incremental steps between copies of theta_SAE to the online encoder

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
        if self.l2 not in L2_SCOPES:
            raise ConfigError(f"sae.l2 must be one of {', '.join(L2_SCOPES)}, got {self.l2!r}")
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
        ):
            v = getattr(self, name)
            if not is_int(v) or v <= 0:
                raise ConfigError(f"sae.{name} must be a positive integer, got {v!r}")
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
        for name in ("gamma1", "gamma2"):
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


def encoder_widths(cfg: SAEConfig, n_in: int) -> tuple[int, ...]:
    """Output widths of the encoder's dense layers, ending in `cfg.latent` (e.g. (45, 30))."""
    if cfg.hidden:
        return (*cfg.hidden, cfg.latent)
    steps = cfg.layers - 1
    mid = tuple(round(n_in + (cfg.latent - n_in) * k / steps) for k in range(1, steps))
    return (*mid, cfg.latent)


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
    """The flax module of `cfg` for inputs of width n_in = N*M."""
    return SAE(
        n_in=n_in,
        widths=encoder_widths(cfg, n_in),
        activation=cfg.activation,
        latent_activation=cfg.latent_activation,
    )


def init_sae(key: jax.Array, cfg: SAEConfig, n_in: int) -> Params:
    """Random parameters theta_SAE (the flax `params` collection)."""
    return make_sae(cfg, n_in).init(key, jnp.zeros((1, n_in), jnp.float32))["params"]


def _n_in(params: Params) -> int:
    return params[f"dec_{len(params) // 2 - 1}"]["kernel"].shape[-1]


def encode(params: Params, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """Code s (..., latent) of inputs x (..., N*M): the DRL state."""
    return make_sae(cfg, x.shape[-1]).apply({"params": params}, x, method=SAE.encode)


def decode(params: Params, cfg: SAEConfig, z: jax.Array) -> jax.Array:
    """Reconstruction x-hat (..., N*M) from codes z (..., latent)."""
    return make_sae(cfg, _n_in(params)).apply({"params": params}, z, method=SAE.decode)


def reconstruct(params: Params, cfg: SAEConfig, x: jax.Array) -> jax.Array:
    """x-hat = decoder(encoder(x)), shape of x."""
    return make_sae(cfg, x.shape[-1]).apply({"params": params}, x)


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


# --- training (Alg. 1, lines 5-10) -----------------------------------------------------------


def optimizer(cfg: SAEConfig) -> optax.GradientTransformation:
    """Adam with the configured step size (eq. 22 with an adaptive step)."""
    return optax.adam(cfg.learning_rate)


def _adam_step(
    params: Params, opt_state: optax.OptState, cfg: SAEConfig, x: jax.Array, stats: ChannelStats
) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    def f(p):
        terms = loss_terms(p, cfg, x, stats)
        return total_loss(terms, cfg), terms

    (loss, terms), grads = jax.value_and_grad(f, has_aux=True)(params)
    updates, opt_state = optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": loss, **terms}


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
    chex.assert_rank(x, 2)
    opt_state = optimizer(cfg).init(params)

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

    (params, _), metrics = jax.lax.scan(body, (params, opt_state), jax.random.split(key, cfg.steps))
    return params, metrics


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


# Incremental learning lives in `ojrs_jax.incremental`; its names stay reachable as `sae.<name>`.
_INCREMENTAL = frozenset({
    "IncrementalState", "Memory", "incremental_init", "incremental_step", "memory_add",
    "memory_add_batch", "memory_init", "memory_sample", "online_encode", "reconstruction_error",
})  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _INCREMENTAL:
        from ojrs_jax import incremental

        return getattr(incremental, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
