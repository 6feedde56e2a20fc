"""Online DRL training of OJRS as one `lax.scan` (paper Algorithm 3, Sec. IV.C-E, eqs. 24-30).

Every epoch t: draw h_t, encode s_t = encoder(h_t) (2r-SAE, eq. 19), act a_t = argmax pi(s_t)
(eq. 24), search a*_t = ASA(a_t, h_t, T_SA) (Algorithm 2), and store (s_t, a*_t, ||theta||^2) in
the replay buffer (2p-ER, or a uniform FIFO for "traditional DRL"). Every phi epochs the policy
takes one Adam step on a sampled batch (eq. 25); the loss decrease Delta-delta of that step sets
the sampled transitions' priorities and adapts T_SA (eq. 30).

Because the policy and T_SA only change on a training step, the phi epochs of one block are
independent given the block's start: they are vmapped (channels, encoding, actions and the phi
ASA searches run in parallel), then the phi transitions enter the buffer in order and one training
step follows. A block is one `lax.scan` step; `run_chunk` scans many blocks in one jitted call,
and a host loop over chunks shows progress and writes checkpoints. Metrics leave the scan as
stacked outputs, one row per epoch.

Dynamic environment (paper Sec. V.E): from epoch `change_epoch` on, the task weights switch to
`weights_after` (drawn uniformly in [weight_low, weight_high] from the run's key).
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

from ojrs_jax.agent.policy import (
    PerUEPolicy,
    PolicyNet,
    act,
    init_policy,
    make_optimizer,
    params_norm_sq,
    policy_loss,
    scaled_hidden,
)
from ojrs_jax.agent.replay import PERParams, ReplayState, make_buffer, replay_from_mapping
from ojrs_jax.core.settings import ConfigError, whole_blocks
from ojrs_jax.env import fixed as env_mod
from ojrs_jax.sae import channel_map, incremental
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.search.asa import ASAConfig, ASAParams, adapt_t_sa, asa_search
from ojrs_jax.system.scenario import Scenario

REPLAYS = ("per", "uniform")
STATES = ("sae", "channel")
ARCHS = ("mlp", "per_ue", "per_ue_code")


def chunk_blocks(n_blocks: int, chunk: int, phi: int) -> int:
    """Blocks per chunk: the largest divisor of n_blocks not above chunk/phi, so every chunk has
    the same length and compiles once."""
    want = max(1, chunk // phi)
    return max(d for d in range(1, min(want, n_blocks) + 1) if n_blocks % d == 0)


@dataclass(frozen=True)
class TrainConfig:
    """Static settings of Algorithm 3 (Python ints and choices; numbers to sweep are leaves)."""

    epochs: int = 10000  # T_DRL, a multiple of phi (whole blocks of phi epochs)
    phi: int = 10  # training interval: one policy update every phi epochs
    batch: int = 128  # transitions per policy update
    updates: int = 1  # Adam steps per training round (paper: 1), each on a fresh batch
    buffer: int = 1024  # replay capacity
    replay: str = "per"  # per (2p-ER) | uniform (traditional FIFO)
    hidden: tuple[int, ...] | str = (120, 80)  # policy widths, or "auto" (scale with N (M+1))
    learning_rate: float = 1e-3  # Adam step size (eq. 25)
    lr_final: float = 1.0  # last Adam step's size / learning_rate (cosine decay; 1: constant)
    lam: float = 0.02  # lambda of eq. 25's L2 term
    explore_eps: float = 0.0  # epsilon-greedy: chance per UE of a random option before ASA
    adaptive: bool = True  # eq. 30 on (False: T_SA stays asa.t_sa0)
    change_epoch: int = 5000  # epoch at which the weights change (<= 0 or >= epochs: never)
    weight_low: float = 0.5  # new weights ~ U[weight_low, weight_high]
    weight_high: float = 1.5
    incremental_sae: bool = True  # keep training the SAE online (Alg. 1) during DRL
    state: str = "sae"  # policy input: sae (the paper's 2r-SAE code) | channel (preprocessed h)
    arch: str = "mlp"  # mlp (the paper's DNN) | per_ue (state=channel) | per_ue_code (state=sae)
    ue_hidden: tuple[int, ...] = (64, 64)  # per_ue: hidden widths of the shared per-UE network
    ue_embed: int = 16  # per_ue: width of the learned UE embedding and of the load context
    local_bias: float = 0.0  # added to the initial local-option logit (0: plain initialisation)
    chunk: int = 1000  # epochs per jitted scan chunk (progress and checkpoints between chunks)
    asa: ASAConfig = field(default_factory=ASAConfig)
    asa_params: ASAParams = field(default_factory=ASAParams)
    per: PERParams = field(default_factory=PERParams)

    def __post_init__(self) -> None:
        for name in ("epochs", "phi", "batch", "updates", "buffer", "chunk", "ue_embed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"train.{name} must be a positive integer, got {v!r}")
        whole_blocks(self.epochs, self.phi, "train.")
        if not isinstance(self.change_epoch, int) or isinstance(self.change_epoch, bool):
            raise ConfigError(f"train.change_epoch must be an integer, got {self.change_epoch!r}")
        if self.state not in STATES:
            raise ConfigError(f"train.state must be one of sae, channel, got {self.state!r}")
        if self.arch not in ARCHS:
            raise ConfigError(f"train.arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.arch == "per_ue" and self.state != "channel":
            raise ConfigError("train.arch=per_ue needs train.state=channel")
        if self.arch == "per_ue_code" and self.state != "sae":
            raise ConfigError("train.arch=per_ue_code needs train.state=sae")
        if self.replay not in REPLAYS:
            raise ConfigError(f"train.replay must be one of per, uniform, got {self.replay!r}")
        for name in ("learning_rate", "lam", "weight_low", "weight_high"):
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < 0 or (name in ("learning_rate", "weight_low") and v == 0):
                raise ConfigError(f"train.{name} must be a finite positive number, got {v!r}")
        f = self.lr_final
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1:
            raise ConfigError(f"train.lr_final must be in [0, 1], got {f!r}")
        if self.weight_high < self.weight_low:
            raise ConfigError(
                f"train.weight_high ({self.weight_high}) must be >= weight_low ({self.weight_low})"
            )
        e = self.explore_eps
        if isinstance(e, bool) or not isinstance(e, int | float) or not 0 <= e <= 1:
            raise ConfigError(f"train.explore_eps must be in [0, 1], got {e!r}")
        uh = self.ue_hidden
        if not isinstance(uh, tuple) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in uh
        ):
            raise ConfigError(f"train.ue_hidden must be positive widths, got {uh!r}")
        b = self.local_bias
        if isinstance(b, bool) or not isinstance(b, int | float) or not math.isfinite(b):
            raise ConfigError(f"train.local_bias must be a finite number, got {b!r}")
        if self.hidden != "auto":
            h = self.hidden
            if not isinstance(h, tuple) or not all(isinstance(w, int) and w > 0 for w in h):
                raise ConfigError(f"train.hidden must be 'auto' or positive widths, got {h!r}")

    @property
    def n_blocks(self) -> int:
        return -(-self.epochs // self.phi)

    @property
    def chunk_blocks(self) -> int:
        return chunk_blocks(self.n_blocks, self.chunk, self.phi)

    def policy_hidden(self, n_ue: int, n_mec: int) -> tuple[int, ...]:
        return scaled_hidden(n_ue, n_mec) if self.hidden == "auto" else tuple(self.hidden)

    def policy_net(self, n_ue: int, n_mec: int, sae_cfg: sae_mod.SAEConfig) -> Any:
        """The policy network of `arch` (PerUEPolicy or the paper's PolicyNet)."""
        if self.arch in ("per_ue", "per_ue_code"):
            code = sae_cfg.per_ue_code if self.arch == "per_ue_code" else 0
            return PerUEPolicy(
                n_ue=n_ue, n_mec=n_mec, hidden=self.ue_hidden, embed=self.ue_embed, code_width=code
            )
        return PolicyNet(n_ue=n_ue, n_mec=n_mec, hidden=self.policy_hidden(n_ue, n_mec))

    @classmethod
    def from_mapping(
        cls, train: dict, asa: dict | None = None, replay: dict | None = None
    ) -> TrainConfig:
        """Build from the plain `train`, `asa` and `replay` config nodes, each parsed by its own
        module (`asa.asa_from_mapping`, `replay.replay_from_mapping`); unknown keys fail."""
        from ojrs_jax.search.asa import asa_from_mapping

        m = dict(train)
        known = {f.name for f in fields(cls)} - {"asa", "asa_params", "per", "replay"}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"unknown train setting {unknown[0]!r}")
        asa_cfg, asa_par = asa_from_mapping(dict(asa or {}))
        kind, per, explore_eps = replay_from_mapping(replay)
        if explore_eps is not None:
            m["explore_eps"] = explore_eps
        for name in ("hidden", "ue_hidden"):
            if isinstance(m.get(name), list):
                m[name] = tuple(m[name])
        return cls(**m, replay=kind, asa=asa_cfg, asa_params=asa_par, per=per)


@struct.dataclass
class Env:
    """What the environment is made of: the deployment and its dynamic change."""

    scn: Scenario  # weights before the change
    weights_after: chex.Array  # (N,) task weights from change_epoch on
    change_epoch: chex.Array  # () int32
    stats: channel_map.ChannelStats  # preprocessing of h into the SAE input


@struct.dataclass
class Hyper:
    """Sweepable numbers of the loop (pytree leaves)."""

    lam: chex.Array  # () lambda of eq. 25
    explore_eps: chex.Array  # () epsilon-greedy rate
    asa: ASAParams


@struct.dataclass
class TrainState:
    """Carry of the training scan."""

    key: jax.Array  # typed PRNG key
    epoch: chex.Array  # () int32 epochs done
    policy: Any  # policy parameters theta
    opt_state: optax.OptState  # Adam state (learning rate injected, a leaf)
    buffer: ReplayState  # replay memory (2p-ER or uniform)
    t_sa: chex.Array  # () int32 current ASA iteration count T_SA
    sae: incremental.IncrementalState  # SAE under incremental learning + online encoder
    hyper: Hyper


@dataclass(frozen=True)
class Trainer:
    """Bound pure functions of one configuration: `init`, `run_chunk`, `train`, `decide`."""

    cfg: TrainConfig
    sae_cfg: sae_mod.SAEConfig
    net: Any  # PolicyNet or PerUEPolicy
    init: Callable[..., TrainState]
    run_chunk: Callable[[TrainState, Env], tuple[TrainState, dict]]
    train: Callable[[jax.Array, Env, Any], tuple[TrainState, dict]]
    decide: Callable[[Any, Any, Env, jax.Array], jax.Array]


def make_env(key: jax.Array, scn: Scenario, cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig) -> Env:
    """The environment of a run: new weights drawn from `key` for the dynamic change."""
    w_new = jax.random.uniform(
        key, scn.weights.shape, minval=cfg.weight_low, maxval=cfg.weight_high
    )
    change = cfg.change_epoch if 0 < cfg.change_epoch < cfg.epochs else 2**30
    return Env(
        scn=scn,
        weights_after=w_new.astype(scn.weights.dtype),
        change_epoch=jnp.asarray(change, jnp.int32),
        stats=channel_map.channel_stats(scn, sae_cfg.preprocess),
    )


def make_trainer(cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig, n_ue: int, n_mec: int) -> Trainer:
    """Derive everything static, then return the pure, jitted functions of Algorithm 3."""
    phi, k, max_iter = cfg.phi, cfg.asa.k, cfg.asa.max_iter
    n_in = n_ue * n_mec
    state_dim = sae_cfg.state_width(n_ue) if cfg.state == "sae" else n_in
    if cfg.arch == "per_ue_code" and sae_cfg.structure != "per_ue":
        raise ConfigError("train.arch=per_ue_code needs sae.structure=per_ue")

    def observe(sae_online: Any, x: jax.Array) -> jax.Array:
        """Policy input from preprocessed channels x (..., N*M)."""
        return sae_mod.encode(sae_online, sae_cfg, x) if cfg.state == "sae" else x

    net = cfg.policy_net(n_ue, n_mec, sae_cfg)
    buf = make_buffer(cfg.replay, cfg.buffer, cfg.batch, state_dim, n_ue)
    opt = make_optimizer(cfg.learning_rate, cfg.lr_final, cfg.n_blocks * cfg.updates)

    def init(key: jax.Array, sae_params: Any) -> TrainState:
        k_pol, key = jax.random.split(key)
        params = init_policy(k_pol, net, state_dim, cfg.local_bias)
        return TrainState(
            key=key,
            epoch=jnp.zeros((), jnp.int32),
            policy=params,
            opt_state=opt.init(params),
            buffer=buf.init(cfg.per),
            t_sa=jnp.asarray(cfg.asa.t_sa0, jnp.int32),
            sae=incremental.incremental_init(sae_cfg, sae_params, n_in),
            hyper=Hyper(
                lam=jnp.asarray(cfg.lam, jnp.float32),
                explore_eps=jnp.asarray(cfg.explore_eps, jnp.float32),
                asa=jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cfg.asa_params),
            ),
        )

    def one_epoch(key, st: TrainState, env: Env, epoch, h):
        """Act and search for one epoch (vmapped over the phi epochs of a block)."""
        k_exp, k_opt, k_asa = jax.random.split(key, 3)
        scn = env_mod.scenario_at(env, epoch)
        s = observe(st.sae.online, channel_map.preprocess(h, env.stats).reshape(-1))
        a = act(net, st.policy, s)
        explore = jax.random.uniform(k_exp, (n_ue,)) < st.hyper.explore_eps
        a0 = jnp.where(explore, jax.random.randint(k_opt, (n_ue,), 0, n_mec + 1), a)
        a_star, l_star, _ = asa_search(
            k_asa, scn, h, a0, st.t_sa, st.hyper.asa, k=k, max_iter=max_iter
        )
        _, lat = env_mod.reward(env, epoch, h, a)
        return s, a_star, {"latency": lat, "latency_search": l_star}

    def block(st: TrainState, env: Env) -> tuple[TrainState, dict]:
        key, k_h, k_ep, k_sae, k_batch = jax.random.split(st.key, 5)
        epochs = st.epoch + jnp.arange(phi, dtype=jnp.int32)
        H = env_mod.draws(k_h, env, phi)
        S, A_star, out = jax.vmap(one_epoch, (0, None, None, 0, 0))(
            jax.random.split(k_ep, phi), st, env, epochs, H
        )
        # transitions enter in epoch order, tagged with the policy's current ||theta||^2
        norm = params_norm_sq(st.policy)
        buffer = jax.lax.fori_loop(
            0, phi, lambda i, b: buf.add(b, S[i], A_star[i], norm), st.buffer
        )
        # incremental SAE learning on the block's channels (Alg. 1)
        sae_state = st.sae
        if cfg.incremental_sae and cfg.state == "sae":
            X = channel_map.preprocess(H, env.stats).reshape(phi, n_in)
            sae_state, _ = jax.lax.scan(
                lambda s, kx: incremental.incremental_step(kx[0], s, sae_cfg, kx[1], env.stats),
                sae_state,
                (jax.random.split(k_sae, phi), X),
            )

        # policy update(s); Delta-delta = loss before - loss after, on the same batch
        def update(carry, k_b):
            policy, opt_state, buffer = carry
            s_b, a_b, idx = buf.sample(k_b, buffer)

            def loss_fn(p):
                return policy_loss(net, p, s_b, a_b, st.hyper.lam)

            loss_before, grads = jax.value_and_grad(loss_fn)(policy)
            upd, opt_state = opt.update(grads, opt_state, policy)
            policy = optax.apply_updates(policy, upd)
            loss_after = loss_fn(policy)
            delta = loss_before - loss_after
            buffer = buf.set_priorities(buffer, idx, jnp.abs(delta))
            return (policy, opt_state, buffer), (loss_after, delta)

        (policy, opt_state, buffer), (losses, deltas) = jax.lax.scan(
            update, (st.policy, st.opt_state, buffer), jax.random.split(k_batch, cfg.updates)
        )
        # Delta-delta of eq. 30 is the loss decrease achieved by the whole training round
        loss_after, delta = losses[-1], jnp.sum(deltas)
        t_sa = st.t_sa
        if cfg.adaptive:
            t_sa = adapt_t_sa(t_sa, delta, st.hyper.asa.eps, max_iter=max_iter)
        new = st.replace(
            key=key,
            epoch=st.epoch + phi,
            policy=policy,
            opt_state=opt_state,
            buffer=buffer,
            t_sa=t_sa,
            sae=sae_state,
        )
        rep = lambda x: jnp.full((phi,), x)  # noqa: E731  per-block value on each epoch row
        metrics = {
            **out,
            "reward": 1.0 / out["latency"],
            "t_sa": jnp.full((phi,), st.t_sa),
            "loss": rep(loss_after),
            "delta": rep(delta),
            "theta_norm_sq": rep(params_norm_sq(policy)),
            "buffer_size": rep(jnp.sum(buffer.valid)),
        }
        return new, metrics

    def scan_blocks(st: TrainState, env: Env, n_blocks: int) -> tuple[TrainState, dict]:
        st, m = jax.lax.scan(lambda c, _: block(c, env), st, None, length=n_blocks)
        return st, jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), m)

    run_chunk = jax.jit(lambda st, env: scan_blocks(st, env, cfg.chunk_blocks))

    @jax.jit
    def train(key: jax.Array, env: Env, sae_params: Any) -> tuple[TrainState, dict]:
        """The whole run in one call (vmap it over keys for many seeds)."""
        return scan_blocks(init(key, sae_params), env, cfg.n_blocks)

    @jax.jit
    def decide(policy: Any, sae_online: Any, env: Env, h: jax.Array) -> jax.Array:
        """Trained pipeline for channels h (..., N, M): encoder, policy argmax -> a (..., N)."""
        x = channel_map.preprocess(h, env.stats).reshape(*h.shape[:-2], n_in)
        return act(net, policy, observe(sae_online, x))

    return Trainer(cfg, sae_cfg, net, jax.jit(init), run_chunk, train, decide)
