"""Policy DNN of the DRL agent and its loss (paper Sec. IV.C, eqs. 24-25).

The policy maps the SAE state s (D,) through dense layers (paper: 120 -> 80) to N x (M+1) logits;
a per-UE softmax gives pi(a_i = j | s) and the action is the per-UE argmax. It is trained by
imitation of the searched action a* (eq. 25):

    loss(theta) = -1/(B N) sum_b sum_i log pi_theta(a*_{b,i} | s_b) + lambda/2 ||theta||^2.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

Params = dict


class PolicyNet(nn.Module):
    """s (..., D) -> logits (..., N, M+1)."""

    n_ue: int
    n_mec: int
    hidden: Sequence[int] = (120, 80)

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        x = s
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        logits = nn.Dense(self.n_ue * (self.n_mec + 1))(x)
        return logits.reshape(*s.shape[:-1], self.n_ue, self.n_mec + 1)


def scaled_hidden(n_ue: int, n_mec: int, base: Sequence[int] = (120, 80)) -> tuple[int, ...]:
    """Hidden widths that grow with the output size N(M+1), equal to `base` at N = 30, M = 2."""
    factor = max(1.0, (n_ue * (n_mec + 1) / 90) ** 0.5)
    return tuple(int(round(w * factor)) for w in base)


def init_policy(key: jax.Array, net: PolicyNet, state_dim: int) -> Params:
    """Initial parameters for states of width `state_dim`."""
    return net.init(key, jnp.zeros((state_dim,), jnp.float32))


def act(net: PolicyNet, params: Params, s: jax.Array) -> jax.Array:
    """Greedy action a = argmax_j pi(j | s) per UE: (..., N) int32."""
    return jnp.argmax(net.apply(params, s), axis=-1).astype(jnp.int32)


def params_norm_sq(params: Params) -> jax.Array:
    """||theta||^2 over every weight and bias."""
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))


def cross_entropy(net: PolicyNet, params: Params, s: jax.Array, a_star: jax.Array) -> jax.Array:
    """Mean per-UE cross-entropy of the policy against the searched actions: s (B, D), a* (B, N)."""
    logp = jax.nn.log_softmax(net.apply(params, s), axis=-1)
    picked = jnp.take_along_axis(logp, a_star[..., None], axis=-1)[..., 0]
    return -jnp.mean(picked)


def policy_loss(
    net: PolicyNet, params: Params, s: jax.Array, a_star: jax.Array, lam: jax.Array | float
) -> jax.Array:
    """Eq. 25: cross-entropy plus lambda/2 ||theta||^2."""
    return cross_entropy(net, params, s, a_star) + 0.5 * lam * params_norm_sq(params)


def make_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam with an injectable learning rate (a state leaf: change it without recompiling)."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
