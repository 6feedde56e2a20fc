"""Policy DNN of the DRL agent and its loss (paper Sec. IV.C, eqs. 24-25).

The policy maps the SAE state s (D,) through dense layers (paper: 120 -> 80) to N x (M+1) logits;
a per-UE softmax gives pi(a_i = j | s) and the action is the per-UE argmax. It is trained by
imitation of the searched action a* (eq. 25):

    loss(theta) = -1/(B N) sum_b sum_i log pi_theta(a*_{b,i} | s_b) + lambda/2 ||theta||^2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


class BlockDense(nn.Module):
    """`nn.Dense` over the concatenation of `parts` without building it: sum_k parts[k] @ W_k + b
    with W_k the kernel's rows of part k. Parts broadcast against each other, so a part that is
    the same for every sample (a UE embedding, (N, E)) or for every UE (a context, (..., 1, E))
    is multiplied once, not once per row. Parameters, names and initialisation are those of
    `nn.Dense` on the concatenated input."""

    features: int

    @nn.compact
    def __call__(self, parts: Sequence[jax.Array]) -> jax.Array:
        widths = [x.shape[-1] for x in parts]
        init = nn.initializers.lecun_normal()
        kernel = self.param("kernel", init, (sum(widths), self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        y, row = bias, 0
        for x, w in zip(parts, widths, strict=True):
            y = y + x @ kernel[row : row + w]
            row += w
        return y


class PerUEPolicy(nn.Module):
    """A permutation-aware alternative to the paper's MLP (config `train.arch=per_ue`).

    With `code_width` 0 the state is the preprocessed channel x (..., N*M) and UE i's features
    are [x_i, log x_i] (2M numbers); with `code_width` k > 0 (`train.arch=per_ue_code`) the
    state is a per-UE SAE code (..., N*k) and UE i's features are its own k code numbers.
    Every UE's logits come from one shared MLP applied to [UE i's features, a learned UE
    embedding (the UE's fixed identity: its position and, after a change, its weight), the mean
    over UEs of a per-UE feature (the load context)]: s -> logits (..., N, M+1). The first two
    layers are `BlockDense`: the embedding's and the context's contributions are computed per UE
    and per sample, not per (sample, UE) row, which halves the work of a training step at
    N = 30, M = 2.
    """

    n_ue: int
    n_mec: int
    hidden: Sequence[int] = (64, 64)
    embed: int = 16
    code_width: int = 0  # 0: state is the channel; k > 0: state is a per-UE code of k numbers

    @property
    def feat_width(self) -> int:
        """Width of one UE's own features: 2M (channel and its log) or k (code)."""
        return self.code_width or 2 * self.n_mec

    def features(self, s: jax.Array) -> jax.Array:
        """UE rows of the state: s (..., D) -> (..., N, feat_width)."""
        if self.code_width:
            return s.reshape(*s.shape[:-1], self.n_ue, self.code_width)
        x = s.reshape(*s.shape[:-1], self.n_ue, self.n_mec)
        return jnp.concatenate([x, jnp.log(jnp.maximum(x, 1e-6))], axis=-1)

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        feats = self.features(s)  # (..., N, feat_width)
        emb = self.param("ue_embedding", nn.initializers.normal(0.1), (self.n_ue, self.embed))
        ctx = BlockDense(self.embed, name="Dense_0")([feats, emb])  # (..., N, E)
        ctx = jnp.mean(nn.relu(ctx), axis=-2, keepdims=True)  # (..., 1, E)
        widths = (*self.hidden, self.n_mec + 1)
        h = BlockDense(widths[0], name="Dense_1")([feats, emb, ctx])
        for i, width in enumerate(widths[1:], start=2):
            h = nn.Dense(width, name=f"Dense_{i}")(nn.relu(h))
        return h


def _dense_layers(params: Params) -> list[dict]:
    """The `Dense_k` layers of a flax parameter tree, in order."""
    inner = params["params"]
    names = sorted((k for k in inner if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    return [inner[k] for k in names]


def inference_fn(net: nn.Module, params: Params) -> Callable[[jax.Array], jax.Array]:
    """logits = f(s), the same function as `net.apply(params, s)` written for deciding only.

    For `PerUEPolicy` every term that depends on the UE's identity alone (its embedding times
    the weights of the context layer and of the first hidden layer, plus their biases) is the
    same for every channel: it is computed once here, which removes the embedding's columns from
    every per-UE matrix product (N = 30, M = 2, embed 32: 0.59 -> 0.29 MFLOP per decision). The
    context (N-mean) enters the first hidden layer once per decision instead of once per UE.
    """
    layers = [{k: jnp.asarray(v) for k, v in d.items()} for d in _dense_layers(params)]
    if isinstance(net, PolicyNet):

        def mlp(s: jax.Array) -> jax.Array:
            x = s
            for d in layers[:-1]:
                x = jax.nn.relu(x @ d["kernel"] + d["bias"])
            x = x @ layers[-1]["kernel"] + layers[-1]["bias"]
            return x.reshape(*s.shape[:-1], net.n_ue, net.n_mec + 1)

        return mlp
    if not isinstance(net, PerUEPolicy):
        raise TypeError(f"no inference path for {type(net).__name__}")
    two_m, e = net.feat_width, net.embed
    emb = jnp.asarray(params["params"]["ue_embedding"])  # (N, E)
    ctx_layer, first, rest = layers[0], layers[1], layers[2:]
    ctx_const = emb @ ctx_layer["kernel"][two_m:] + ctx_layer["bias"]  # (N, E)
    k_first = first["kernel"]  # rows: [x, log x] (2M), embedding (E), context (E)
    first_const = emb @ k_first[two_m : two_m + e] + first["bias"]  # (N, H1)

    def per_ue(s: jax.Array) -> jax.Array:
        feats = net.features(s)  # (..., N, feat_width)
        ctx = jnp.mean(jax.nn.relu(_narrow(feats, ctx_layer["kernel"][:two_m]) + ctx_const), -2)
        h = (
            _narrow(feats, k_first[:two_m])
            + first_const
            + (ctx @ k_first[two_m + e :])[..., None, :]
        )
        for d in rest:
            h = jax.nn.relu(h) @ d["kernel"] + d["bias"]
        return h

    return per_ue


def _narrow(x: jax.Array, w: jax.Array) -> jax.Array:
    """x (..., K) @ w (K, H). For K <= 8 (a UE's own features, 2M numbers) it is written as K
    broadcast multiply-adds, which XLA fuses with the bias and ReLU that follow: a matrix
    product that narrow ran at 40-80 GFLOP/s here and wrote its (rows, H) output once more."""
    if w.shape[0] > 8:
        return x @ w
    out = x[..., 0:1] * w[0]
    for i in range(1, w.shape[0]):
        out = out + x[..., i : i + 1] * w[i]
    return out


def inference_flops(net: nn.Module, params: Params) -> int:
    """Multiply-adds x 2 of one decision through `inference_fn` (dense layers only)."""
    layers = _dense_layers(params)
    if isinstance(net, PolicyNet):
        return sum(2 * d["kernel"].shape[0] * d["kernel"].shape[1] for d in layers)
    two_m, e, n = net.feat_width, net.embed, net.n_ue
    ctx, first, rest = layers[0], layers[1], layers[2:]
    h1 = first["kernel"].shape[1]
    per_ue = 2 * two_m * ctx["kernel"].shape[1] + 2 * two_m * h1
    per_ue += sum(2 * d["kernel"].shape[0] * d["kernel"].shape[1] for d in rest)
    return n * per_ue + 2 * e * h1


def scaled_hidden(n_ue: int, n_mec: int, base: Sequence[int] = (120, 80)) -> tuple[int, ...]:
    """Hidden widths that grow with the output size N(M+1), equal to `base` at N = 30, M = 2."""
    factor = max(1.0, (n_ue * (n_mec + 1) / 90) ** 0.5)
    return tuple(int(round(w * factor)) for w in base)


def init_policy(key: jax.Array, net: nn.Module, state_dim: int, local_bias: float = 0.0) -> Params:
    """Initial parameters for states of width `state_dim`.

    `local_bias` > 0 is added to the output bias of the local option (j = 0) of every UE, so the
    untrained policy starts near "all local", a feasible decision whose cost grows only linearly
    in N (at N = 1000 a random or greedy start overloads the MECs and ASA cannot repair it).
    """
    params = net.init(key, jnp.zeros((state_dim,), jnp.float32))
    if not local_bias:
        return params
    n_opt = net.n_mec + 1
    inner = params["params"]
    last = max((k for k in inner if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    bias = inner[last]["bias"]  # (N (M+1),) for PolicyNet, (M+1,) for PerUEPolicy
    local = (jnp.arange(bias.shape[0]) % n_opt == 0).astype(bias.dtype)
    new_last = {**inner[last], "bias": bias + local_bias * local}
    return {**params, "params": {**inner, last: new_last}}


def act(net: nn.Module, params: Params, s: jax.Array) -> jax.Array:
    """Greedy action a = argmax_j pi(j | s) per UE: (..., N) int32."""
    return jnp.argmax(net.apply(params, s), axis=-1).astype(jnp.int32)


def params_norm_sq(params: Params) -> jax.Array:
    """||theta||^2 over every weight and bias."""
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))


def cross_entropy(net: nn.Module, params: Params, s: jax.Array, a_star: jax.Array) -> jax.Array:
    """Mean per-UE cross-entropy of the policy against the searched actions: s (B, D), a* (B, N)."""
    logp = jax.nn.log_softmax(net.apply(params, s), axis=-1)
    picked = jnp.take_along_axis(logp, a_star[..., None], axis=-1)[..., 0]
    return -jnp.mean(picked)


def soft_cross_entropy(
    net: nn.Module, params: Params, s: jax.Array, targets: jax.Array, temperature: float = 1.0
) -> jax.Array:
    """Mean per-UE cross-entropy of the policy against option probabilities: s (B, D),
    targets (B, N, M+1) (a teacher's softmax; one-hot targets give `cross_entropy`). With a
    `temperature` T != 1 the policy's logits are divided by T and the mean multiplied by T^2
    (knowledge distillation, Hinton et al. 2015: targets softened by the same T)."""
    logits = net.apply(params, s)
    if temperature != 1.0:
        logits = logits / temperature
    ce = -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))
    return ce if temperature == 1.0 else temperature**2 * ce


def policy_loss(
    net: nn.Module,
    params: Params,
    s: jax.Array,
    a_star: jax.Array,
    lam: jax.Array | float,
    temperature: float = 1.0,
) -> jax.Array:
    """Eq. 25: cross-entropy plus lambda/2 ||theta||^2. a_star: the searched actions (B, N), or
    option probabilities (B, N, M+1) to learn instead (a teacher's, `train.distill`, softened by
    `temperature`, which then also divides the policy's logits: `soft_cross_entropy`)."""
    if jnp.issubdtype(a_star.dtype, jnp.integer):
        ce = cross_entropy(net, params, s, a_star)
    else:
        ce = soft_cross_entropy(net, params, s, a_star, temperature)
    return ce + 0.5 * lam * params_norm_sq(params)


def make_optimizer(
    learning_rate: float, lr_final: float = 1.0, steps: int = 1
) -> optax.GradientTransformation:
    """Adam with an injectable learning rate (a state leaf: change it without recompiling).

    With `lr_final` < 1 the step size follows a cosine from `learning_rate` at the first of
    `steps` Adam steps to `lr_final` x `learning_rate` at the last (optax's schedule, driven by
    the step count kept in the optimiser state); 1 keeps it constant."""
    if lr_final == 1.0:
        return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps - 1, 1), alpha=lr_final)
    return optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
