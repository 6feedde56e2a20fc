"""Algorithm 3 over a deployment distribution: one feature policy for any N, M (eqs. 24-32).

Each epoch draws a deployment and its channel from a `deployment.Sampler` (fixed, random or
mobile), acts with the feature policy (`feature_policy`, eq. 24), improves the action with a
masked ASA (Algorithm 2, eqs. 26-29: padded UEs never move, padded MECs are never proposed, the
objective is the closed-form L of eqs. 5-13 over the real UEs), stores the transition in the
replay buffer (2p-ER, eqs. 31-32, or uniform FIFO), and every phi epochs takes `updates` Adam
steps on eq. 25. The stored state is the whole padded deployment and channel, flattened, so the
features are recomputed from the raw inputs on every training step.

As in `train.py`, the phi epochs of a block are vmapped given the block's start, a block is one
`lax.scan` step, `run_chunk` scans many blocks in one jitted call and `train(key)` runs a whole
run in one call (vmap it over keys for many seeds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.agent.policy import make_optimizer, params_norm_sq
from ojrs_jax.agent.replay import PERParams, ReplayState, make_buffer, replay_from_mapping
from ojrs_jax.agent.trainer import chunk_blocks
from ojrs_jax.core.settings import ConfigError, whole_blocks
from ojrs_jax.search.asa import ASAConfig, ASAParams, adapt_t_sa, asa_from_mapping, search_with
from ojrs_jax.search.baselines import capacity_rule
from ojrs_jax.system.deployment import (
    Deployment,
    Sampler,
    link_mask,
    masked_costs,
    masked_latency,
    sanitize,
)

# --- masked baselines and search --------------------------------------------------------------


def masked_probs(dep: Deployment, h: jax.Array, local_weight) -> jax.Array:
    """h-mutation distribution q (N, M+1) (eq. 27) over the real options: the MEC shares
    h_ij / sum_{k real} h_ik, the local option weighing as much as an average real MEC; a padded
    UE has all its mass on local (it keeps option 0 and never mutates)."""
    hm = jnp.where(link_mask(dep), h, 0.0)
    m_real = jnp.maximum(jnp.sum(dep.mec_mask), 1).astype(h.dtype)
    share = hm / jnp.maximum(jnp.sum(hm, axis=1, keepdims=True), jnp.finfo(h.dtype).tiny)
    w0 = local_weight / m_real
    q = jnp.concatenate([jnp.full((h.shape[0], 1), w0, h.dtype), share], axis=1) / (1.0 + w0)
    local_only = jax.nn.one_hot(jnp.zeros(h.shape[0], jnp.int32), h.shape[1] + 1, dtype=h.dtype)
    return jnp.where(dep.ue_mask[:, None], q, local_only)


def masked_asa(
    key,
    dep: Deployment,
    h,
    a0,
    n_iter,
    params: ASAParams,
    *,
    k: int,
    max_iter: int,
    moves: float = 0.0,
):
    """ASA (Algorithm 2) on the real part of a padded deployment; returns (a_best, L, trace).

    `moves` > 0 caps the mutation scale at moves / N (N the real UEs): about `moves` UEs change
    per neighbour whatever N (a fixed c = 0.1 moves about 15 of 300 UEs, and the search stalls).
    """
    if moves > 0:
        n_real = jnp.maximum(jnp.sum(dep.ue_mask), 1).astype(jnp.float32)
        params = params.replace(mut_scale=jnp.minimum(params.mut_scale, moves / n_real))
    costs = masked_costs(dep, h)
    q = masked_probs(dep, h, params.local_weight)
    return search_with(key, q, costs, sanitize(dep, a0), n_iter, params, k, max_iter)


def masked_greedy(dep: Deployment) -> jax.Array:
    """Greedy (Sec. V.D): nearest real MEC (largest large-scale gain), then the capacity rule."""
    g = jnp.where(dep.mec_mask[None, :], dep.gain, -jnp.inf)
    a = jnp.argmax(g, axis=1).astype(jnp.int32) + 1
    a = jnp.where(dep.ue_mask, a, 0)
    return sanitize(dep, capacity_rule(dep.scn, a))


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnyTrainConfig:
    """Static settings of Algorithm 3 over a distribution (the Hydra `general` node)."""

    epochs: int = 3000  # T_DRL (rounded up to whole blocks of phi epochs)
    phi: int = 10  # one training round every phi epochs
    batch: int = 64  # transitions per Adam step
    updates: int = 4  # Adam steps per round, each on a fresh batch
    buffer: int = 2048  # replay capacity
    replay: str = "per"  # per (2p-ER) | uniform
    learning_rate: float = 1e-3
    lam: float = 1e-5  # lambda of eq. 25
    adaptive: bool = False  # eq. 30 on T_SA (False: T_SA stays asa.t_sa0)
    rounds: int = 2  # scoring passes of the feature policy
    width: int = 32  # link embedding width
    hidden: int = 32  # scoring MLP width
    chunk: int = 500  # epochs per jitted chunk
    asa_moves: float = 0.0  # > 0: ASA's mutation scale capped at asa_moves / N (0: off)
    init_from: str = ""  # run directory whose model starts the policy (fine-tuning); "": fresh
    asa: ASAConfig = field(default_factory=ASAConfig)
    asa_params: ASAParams = field(default_factory=ASAParams)
    per: PERParams = field(default_factory=PERParams)

    def __post_init__(self) -> None:
        ints = ("epochs", "phi", "batch", "updates", "buffer", "rounds", "width", "hidden", "chunk")
        for name in ints:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"general.{name} must be a positive integer, got {v!r}")
        whole_blocks(self.epochs, self.phi, "general.")
        if self.replay not in ("per", "uniform"):
            raise ConfigError(f"general.replay must be per or uniform, got {self.replay!r}")
        if isinstance(self.init_from, bool) or not isinstance(self.init_from, str):
            raise ConfigError(f"general.init_from must be a path or '', got {self.init_from!r}")
        for name in ("learning_rate", "lam", "asa_moves"):
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < 0 or (name == "learning_rate" and v == 0):
                raise ConfigError(f"general.{name} must be a finite positive number, got {v!r}")

    @property
    def n_blocks(self) -> int:
        return -(-self.epochs // self.phi)

    @property
    def chunk_blocks(self) -> int:
        return chunk_blocks(self.n_blocks, self.chunk, self.phi)

    @classmethod
    def from_mapping(cls, m: dict, asa: dict | None = None, replay: dict | None = None):
        known = {f.name for f in fields(cls)} - {"asa", "asa_params", "per", "replay"}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"unknown general setting {unknown[0]!r}")
        asa_cfg, asa_par = asa_from_mapping(dict(asa or {}))
        kind, per, _ = replay_from_mapping(replay)  # no epsilon-greedy exploration here
        return cls(**m, replay=kind, asa=asa_cfg, asa_params=asa_par, per=per)


# --- training ---------------------------------------------------------------------------------


@struct.dataclass
class AnyState:
    """Carry of the training scan."""

    key: jax.Array
    epoch: chex.Array  # () int32
    policy: Any
    opt_state: optax.OptState
    buffer: ReplayState
    t_sa: chex.Array  # () int32
    sampler: Any  # the sampler's state (mobile: positions, waypoints, fading)
    lam: chex.Array  # () lambda of eq. 25
    asa: ASAParams


@dataclass(frozen=True)
class AnyTrainer:
    """Bound pure functions: `init(key)`, `run_chunk(state)`, `train(key)`, `decide`."""

    cfg: AnyTrainConfig
    net: fp.FeaturePolicy
    sampler: Sampler
    init: Callable[[jax.Array], AnyState]
    run_chunk: Callable[[AnyState], tuple[AnyState, dict]]
    train: Callable[[jax.Array], tuple[AnyState, dict]]


def make_any_trainer(cfg: AnyTrainConfig, sampler: Sampler) -> AnyTrainer:
    """Derive every static size from the sampler, then return the jitted functions."""
    phi, k, max_iter = cfg.phi, cfg.asa.k, cfg.asa.max_iter
    net = fp.FeaturePolicy(rounds=cfg.rounds, width=cfg.width, hidden=cfg.hidden)
    s0 = sampler.init(jax.random.key(0))
    _, dep0, h0 = jax.eval_shape(sampler.step, jax.random.key(0), s0)
    dep0 = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), dep0)
    h0 = jnp.ones(h0.shape, h0.dtype)
    flat0, unravel = ravel_pytree((dep0, h0))
    buf = make_buffer(cfg.replay, cfg.buffer, cfg.batch, flat0.shape[0], sampler.n_max)
    opt = make_optimizer(cfg.learning_rate)

    def pack(dep, h):
        return ravel_pytree((dep, h))[0]

    start = None
    if cfg.init_from:
        from flax import serialization

        from ojrs_jax.run.any_scheduler import MODEL_FILE

        try:
            with open(f"{cfg.init_from}/{MODEL_FILE}", "rb") as fh:
                start = serialization.msgpack_restore(fh.read())
        except (OSError, ValueError) as e:
            raise ConfigError(f"general.init_from: cannot read a model: {e}") from None

    def init(key: jax.Array) -> AnyState:
        k_pol, k_s, key = jax.random.split(key, 3)
        params = fp.init_params(k_pol, net, dep0.replace(ue_mask=dep0.ue_mask | True), h0)
        if start is not None:
            params = jax.tree.map(
                lambda p, q: jnp.asarray(q, p.dtype).reshape(p.shape), params, start
            )
        return AnyState(
            key=key,
            epoch=jnp.zeros((), jnp.int32),
            policy=params,
            opt_state=opt.init(params),
            buffer=buf.init(cfg.per),
            t_sa=jnp.asarray(cfg.asa.t_sa0, jnp.int32),
            sampler=sampler.init(k_s),
            lam=jnp.asarray(cfg.lam, jnp.float32),
            asa=jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cfg.asa_params),
        )

    def one_epoch(key, st: AnyState, dep, h):
        a = fp.act(net, st.policy, dep, h)
        a_star, l_star, _ = masked_asa(
            key, dep, h, a, st.t_sa, st.asa, k=k, max_iter=max_iter, moves=cfg.asa_moves
        )
        l_pol = masked_latency(dep, h, a)
        return a_star, {"latency": l_pol, "latency_search": l_star, "ratio": l_star / l_pol}

    def block(st: AnyState) -> tuple[AnyState, dict]:
        key, k_s, k_ep, k_b = jax.random.split(st.key, 4)

        def draw(ss, kk):
            ss, dep, h = sampler.step(kk, ss)
            return ss, (dep, h)

        s_state, (deps, H) = jax.lax.scan(draw, st.sampler, jax.random.split(k_s, phi))
        A_star, out = jax.vmap(one_epoch, (0, None, 0, 0))(jax.random.split(k_ep, phi), st, deps, H)
        S = jax.vmap(pack)(deps, H)
        norm = params_norm_sq(st.policy)
        buffer = jax.lax.fori_loop(
            0, phi, lambda i, b: buf.add(b, S[i], A_star[i], norm), st.buffer
        )

        def update(carry, k_u):
            policy, opt_state, buffer = carry
            s_b, a_b, idx = buf.sample(k_u, buffer)
            deps_b, H_b = jax.vmap(unravel)(s_b)

            def loss_fn(p):
                return fp.loss(net, p, deps_b, H_b, a_b, st.lam)

            before, grads = jax.value_and_grad(loss_fn)(policy)
            upd, opt_state = opt.update(grads, opt_state, policy)
            policy = optax.apply_updates(policy, upd)
            after = loss_fn(policy)
            buffer = buf.set_priorities(buffer, idx, jnp.abs(before - after))
            return (policy, opt_state, buffer), (after, before - after)

        (policy, opt_state, buffer), (losses, deltas) = jax.lax.scan(
            update, (st.policy, st.opt_state, buffer), jax.random.split(k_b, cfg.updates)
        )
        delta = jnp.sum(deltas)
        t_sa = st.t_sa
        if cfg.adaptive:
            t_sa = adapt_t_sa(t_sa, delta, st.asa.eps, max_iter=max_iter)
        new = st.replace(
            key=key,
            epoch=st.epoch + phi,
            policy=policy,
            opt_state=opt_state,
            buffer=buffer,
            t_sa=t_sa,
            sampler=s_state,
        )
        rep = lambda x: jnp.full((phi,), x)  # noqa: E731
        metrics = {
            **out,
            "n_ue": jnp.sum(deps.ue_mask, axis=1),
            "n_mec": jnp.sum(deps.mec_mask, axis=1),
            "loss": rep(losses[-1]),
            "t_sa": jnp.full((phi,), st.t_sa),
        }
        return new, metrics

    def scan_blocks(st: AnyState, n_blocks: int):
        st, m = jax.lax.scan(lambda c, _: block(c), st, None, length=n_blocks)
        return st, jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), m)

    run_chunk = jax.jit(lambda st: scan_blocks(st, cfg.chunk_blocks))

    @jax.jit
    def train(key: jax.Array):
        return scan_blocks(init(key), cfg.n_blocks)

    return AnyTrainer(cfg, net, sampler, jax.jit(init), run_chunk, train)
