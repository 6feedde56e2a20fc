"""DROO (Huang, Bi, Zhang, IEEE TMC 2020) in JAX, adapted to M + 1 options per UE (eqs. 5-13).

Deep Reinforcement learning-based Online Offloading: a DNN maps the channel of a time frame to
a relaxed decision; order-preserving quantisation turns it into K candidate decisions; each
candidate is scored by the resource allocation (here P2's closed form, `problem_costs`), the
best is taken and stored in a replay memory; every `interval` frames the DNN takes one Adam step
on a batch of stored (channel, best decision) pairs (cross-entropy). Its paper's settings: a
DNN of two hidden layers (120, 80), memory 1024, batch 128, training interval 10, Adam 0.01.

Adapted to M MECs: the DNN gives each UE a softmax over its M + 1 options (DROO's sigmoid
over 2). Candidate 1 takes every UE's most likely option; the other K - 1 candidates each move
one UE to another option, the (UE, option) pairs taken in the order of their probability
relative to the UE's top one, p_ij / p_i,top (the most plausible changes first). In DROO's
binary case this is its order-preserving quantisation near the threshold (the entries closest
to 0.5 are changed first); with M + 1 options it reaches every option, not only the second
(`quantise="second"`, moving the k least confident UEs to their second option together, is
kept for comparison: benchmarks/bench_droo.py). K = min(N + 1, `k_max`).

The DNN reads the channel only, as in DROO: log h standardised per problem (scale-free, so one
network serves deployments of one size whose gains and tasks differ); the candidates are scored
with the problem's own tasks and capacities. Trained online on a task's distribution of problems
(`env.base.OffloadingEnv.draw`), one problem per frame, in a `lax.scan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ojrs_jax.core import ring
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.env.base import OffloadingEnv
from ojrs_jax.system.deployment import Problem, problem_costs
from ojrs_jax.system.p2 import costs_latency


@dataclass(frozen=True)
class DROOConfig:
    """DROO's settings (its paper's, and the frames of online training)."""

    frames: int = 30000  # time frames of online training, one problem each (its paper's)
    hidden: tuple[int, ...] = (120, 80)  # the DNN's hidden widths
    k_max: int = 64  # candidates per frame: min(N + 1, k_max)
    memory: int = 1024  # replay memory (FIFO)
    batch: int = 128  # transitions per Adam step
    interval: int = 10  # frames between training steps
    learning_rate: float = 0.01  # Adam step size
    quantise: str = "moves"  # "moves" (single moves, the default) or "second" (see `candidates`)


class DROONet(nn.Module):
    """Standardised log channel (N*M) -> logits (N, M+1)."""

    n_ue: int
    n_mec: int
    hidden: tuple[int, ...] = (120, 80)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for w in self.hidden:
            x = nn.relu(nn.Dense(w)(x))
        out = nn.Dense(self.n_ue * (self.n_mec + 1))(x)
        return out.reshape(*x.shape[:-1], self.n_ue, self.n_mec + 1)


def dnn_input(h: jax.Array) -> jax.Array:
    """log h standardised over the problem's links, flattened: (N, M) -> (N*M,)."""
    z = jnp.log(jnp.maximum(h, 1e-30))
    return ((z - jnp.mean(z)) / jnp.maximum(jnp.std(z), 1e-6)).reshape(-1)


def candidates(logits: jax.Array, k: int, quantise: str = "moves") -> jax.Array:
    """K decisions (K, N) by order-preserving quantisation of per-UE softmaxes (N, M+1).

    "moves": the most likely decision, then K - 1 single moves (UE i to option j) in decreasing
    order of p_ij / p_i,top. "second" (the first adaptation, kept for comparison): candidate
    k + 1 moves the k least confident UEs (top probability minus the second) to their second
    option."""
    if quantise not in ("moves", "second"):
        raise ConfigError(f"DROO's quantise must be 'moves' or 'second', got {quantise!r}")
    p = jax.nn.softmax(logits, axis=-1)
    n, options = p.shape
    top = jnp.argmax(p, axis=-1)
    if quantise == "second":
        second = jnp.argsort(-p, axis=-1)[:, 1]
        confidence = p[jnp.arange(n), top] - p[jnp.arange(n), second]
        position = jnp.argsort(jnp.argsort(confidence))  # 0 for the least confident UE
        moved = position[None, :] < jnp.arange(k)[:, None]
        return jnp.where(moved, second[None, :], top[None, :]).astype(jnp.int32)
    rel = p / p[jnp.arange(n), top][:, None]
    rel = jnp.where(jax.nn.one_hot(top, options, dtype=bool), -jnp.inf, rel).reshape(-1)
    pairs = jnp.argsort(-rel)[: k - 1]  # ties: the lower UE, then the lower option, first
    ue, option = pairs // options, pairs % options
    moves = jnp.broadcast_to(top, (k - 1, n)).at[jnp.arange(k - 1), ue].set(option)
    return jnp.concatenate([top[None], moves]).astype(jnp.int32)


def decide(net: DROONet, params: Any, p: Problem, k: int, quantise: str = "moves") -> jax.Array:
    """DROO's decision for one problem: the best of its K candidates by P2's latency."""
    cands = candidates(net.apply(params, dnn_input(p.h)), k, quantise)
    return cands[jnp.argmin(costs_latency(problem_costs(p), cands))]


class DROO(NamedTuple):
    """A trained DROO: its network, parameters and K."""

    net: DROONet
    params: Any
    k: int
    quantise: str = "moves"

    def decide_batch(self, dep: Any, h: jax.Array) -> jax.Array:
        """Decisions (B, N) for a batch of deployments and channels."""
        one = lambda d, x: decide(self.net, self.params, Problem(d, x), self.k, self.quantise)  # noqa: E731
        return jax.vmap(one)(dep, h)


def train(key: jax.Array, env: OffloadingEnv, params_env: Any, cfg: DROOConfig) -> DROO:
    """DROO trained online for `cfg.frames` frames of `env`'s problems."""
    n, m = env.n_ue, env.n_mec
    k = min(n + 1, cfg.k_max)
    net = DROONet(n, m, cfg.hidden)
    k_init, k_gen, k_run = jax.random.split(key, 3)
    theta = net.init(k_init, jnp.zeros((n * m,), jnp.float32))
    opt = optax.adam(cfg.learning_rate)
    memory = ring.init(
        {"x": jnp.zeros((cfg.memory, n * m)), "a": jnp.zeros((cfg.memory, n), jnp.int32)}
    )
    gen = env.init_gen(k_gen if env.gen_needs_key else None, params_env)

    def loss(theta, x, a):
        logp = jax.nn.log_softmax(net.apply(theta, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, a[..., None], axis=-1))

    def frame(carry, inputs):
        theta, opt_state, memory, gen = carry
        key, t = inputs
        k_draw, k_batch = jax.random.split(key)
        gen, p = env.draw(k_draw, gen, t, params_env)
        x = dnn_input(p.h)
        a = decide(net, theta, p, k, cfg.quantise)
        memory = ring.push(memory, {"x": x, "a": a})

        def step(args):
            theta, opt_state = args
            b = ring.sample(k_batch, memory, cfg.batch)
            g = jax.grad(loss)(theta, b["x"], b["a"])
            upd, opt_state = opt.update(g, opt_state, theta)
            return optax.apply_updates(theta, upd), opt_state

        train_now = (t + 1) % cfg.interval == 0
        theta, opt_state = jax.lax.cond(train_now, step, lambda x: x, (theta, opt_state))
        return (theta, opt_state, memory, gen), None

    carry = (theta, opt.init(theta), memory, gen)
    times = jnp.arange(cfg.frames, dtype=jnp.int32)
    run = jax.jit(lambda c, ks: jax.lax.scan(frame, c, (ks, times))[0])
    theta = jax.block_until_ready(run(carry, jax.random.split(k_run, cfg.frames))[0])
    return DROO(net, theta, k, cfg.quantise)


__all__ = ["DROO", "DROOConfig", "DROONet", "candidates", "decide", "dnn_input", "train"]
