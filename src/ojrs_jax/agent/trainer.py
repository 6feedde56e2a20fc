"""Online DRL training of OJRS as one `lax.scan` (paper Algorithm 3, Sec. IV.C-E, eqs. 24-30).

Every epoch t the environment gives the epoch's problem (deployment and channel h_t); the agent
observes it, s_t = encoder(h_t) for the paper's 2r-SAE state (eq. 19), acts a_t = argmax
pi(s_t) (eq. 24), ASA searches a*_t = ASA(a_t, h_t, T_SA) (Algorithm 2), and (s_t, a*_t,
||theta||^2) enters the replay buffer (2p-ER, or a uniform FIFO for "traditional DRL"). Every
phi epochs the policy takes `updates` Adam steps on sampled batches (eq. 25); the loss decrease
Delta-delta sets the sampled transitions' priorities and adapts T_SA (eq. 30).

One trainer serves every task and policy: `make_trainer(cfg, env, agent)` takes the
environment (`env.fixed.FixedDeployment`, the paper's deployment, or
`env.distribution.DeploymentDistribution`, deployments of any N and M padded with masks) and
the agent of `train.arch` (`agent.agents.make_agent`).

Because the policy and T_SA only change on a training step, the phi epochs of one block are
independent given the block's start: the environment draws the block's problems ahead
(`env.rollout`: the channel process does not depend on the decisions), the phi observations,
actions and ASA searches run vmapped, then the phi transitions enter the buffer in order and
the training round follows. A block is one `lax.scan` step; `run_chunk` scans many blocks in one
jitted call, and a host loop over chunks (`run.loop`) shows progress and writes checkpoints.
Metrics leave the scan as stacked outputs, one row per epoch.

With `train.average` = d > 0 the state also keeps the Polyak average of theta (avg <- d avg +
(1 - d) theta after every training round, from the initial theta); it decides at evaluation
and is the saved model (`Trainer.deciding`), while training goes on from the last theta. The
last parameters of a constant-step Adam run move from round to round (at M = 4 the mean latency
of evaluations 250 epochs apart differs by up to 2 %); their average moves less, though at the
end of the runs measured it decided no better (docs/findings/sae-state.md).

Dynamic environment (paper Sec. V.E): from epoch `change_epoch` on, the task weights of the
fixed deployment switch to `weights_after` (drawn uniformly in [weight_low, weight_high] from
the run's key, `make_env`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from ojrs_jax.agent.agents import Agent
from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import make_optimizer, params_norm_sq
from ojrs_jax.agent.replay import ReplayState, make_buffer
from ojrs_jax.env.base import OffloadingEnv
from ojrs_jax.env.fixed import NEVER, EnvParams, make_params
from ojrs_jax.sae import channel_map, incremental
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.search.asa import ASAParams, adapt_t_sa, search
from ojrs_jax.system.deployment import Problem, problem_latency
from ojrs_jax.system.scenario import Scenario


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
    sae: incremental.IncrementalState | None  # 2r-SAE under Algorithm 1 (None: no encoder)
    hyper: Hyper
    env: Any  # the environment's generator of the next epoch (mobility, fading), () if i.i.d.
    average: Any = None  # Polyak average of theta (train.average > 0), else None


@dataclass(frozen=True)
class Trainer:
    """Bound pure functions of one configuration: `init`, `run_chunk`, `train`, `decide`."""

    cfg: TrainConfig
    sae_cfg: sae_mod.SAEConfig
    env: OffloadingEnv
    agent: Agent
    init: Callable[..., TrainState]  # (key, sae_params=None, params=None) -> state
    run_chunk: Callable[[TrainState, Any], tuple[TrainState, dict]]  # (state, env params)
    train: Callable[..., tuple[TrainState, dict]]  # (key, env params, sae_params=None)
    decide: Callable[[Any, Any, Any, Problem], jax.Array]  # (theta, encoder, params, problems)

    @property
    def net(self) -> Any:
        return self.agent.net

    def deciding(self, st: TrainState) -> Any:
        """The parameters theta that decide: the Polyak average with `train.average` > 0, else
        the last ones. The evaluations and the saved model use these."""
        return st.policy if st.average is None else st.average

    def model(self, st: TrainState) -> dict[str, Any]:
        """What a scheduler needs to decide, as `model.msgpack` holds it: the policy parameters
        and the online encoder ({} when the policy reads no code)."""
        theta = self.deciding(st)
        if self.agent.learns_code:
            return {"policy": theta["policy"], "encoder": theta["encoder"]}
        return {"policy": theta, "encoder": {} if st.sae is None else st.sae.online}


def make_env(
    key: jax.Array, scn: Scenario, cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig
) -> EnvParams:
    """The fixed deployment's parameters for a run: new weights drawn from `key` for the dynamic
    change at `cfg.change_epoch`, and the channel statistics the agent normalises h with."""
    w_new = jax.random.uniform(
        key, scn.weights.shape, minval=cfg.weight_low, maxval=cfg.weight_high
    )
    change = cfg.change_epoch if 0 < cfg.change_epoch < cfg.epochs else NEVER
    stats = channel_map.channel_stats(scn, sae_cfg.preprocess)
    return make_params(scn, w_new.astype(scn.weights.dtype), change, stats=stats)


def make_trainer(
    cfg: TrainConfig, env: OffloadingEnv, agent: Agent, sae_cfg: sae_mod.SAEConfig | None = None
) -> Trainer:
    """Derive everything static, then return the pure, jitted functions of Algorithm 3."""
    sae_cfg = sae_mod.SAEConfig() if sae_cfg is None else sae_cfg
    phi, k, max_iter = cfg.phi, cfg.asa.k, cfg.asa.max_iter
    n_ue, n_mec = env.n_ue, env.n_mec
    n_in = n_ue * n_mec
    buf = make_buffer(cfg.replay, cfg.buffer, cfg.batch, agent.state_dim, n_ue)
    opt = make_optimizer(cfg.learning_rate, cfg.lr_final, cfg.n_blocks * cfg.updates)

    def online(st: TrainState) -> Any:
        return None if st.sae is None else st.sae.online

    def init(key: jax.Array, sae_params: Any = None, params: Any = None) -> TrainState:
        params = env.default_params if params is None else params
        k_pol, key = jax.random.split(key)
        policy = agent.init(k_pol, sae_params)
        if env.gen_needs_key:
            k_gen, key = jax.random.split(key)
            gen = env.init_gen(k_gen, params)
        else:
            gen = env.init_gen(None, params)
        sae = (
            None
            if sae_params is None or agent.learns_code
            else incremental.incremental_init(sae_cfg, sae_params, n_in)
        )
        return TrainState(
            key=key,
            epoch=jnp.zeros((), jnp.int32),
            policy=policy,
            opt_state=opt.init(policy),
            buffer=buf.init(cfg.per),
            t_sa=jnp.asarray(cfg.asa.t_sa0, jnp.int32),
            sae=sae,
            hyper=Hyper(
                lam=jnp.asarray(cfg.lam, jnp.float32),
                explore_eps=jnp.asarray(cfg.explore_eps, jnp.float32),
                asa=jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cfg.asa_params),
            ),
            env=gen,
            average=policy if cfg.average else None,
        )

    def one_epoch(key, st: TrainState, params: Any, p: Problem):
        """Observe, act and search for one epoch (vmapped over the phi epochs of a block)."""
        k_exp, k_opt, k_asa = jax.random.split(key, 3)
        s = agent.observe(online(st), params, p)
        a = agent.act(st.policy, s)
        explore = jax.random.uniform(k_exp, (n_ue,)) < st.hyper.explore_eps
        a0 = jnp.where(explore, jax.random.randint(k_opt, (n_ue,), 0, n_mec + 1), a)
        a_star, l_star, _ = search(
            k_asa, p, a0, st.t_sa, st.hyper.asa, k=k, max_iter=max_iter, moves=cfg.asa_moves
        )
        return s, a_star, {"latency": problem_latency(p, a), "latency_search": l_star}

    def block(st: TrainState, params: Any) -> tuple[TrainState, dict]:
        key, k_h, k_ep, k_sae, k_batch = jax.random.split(st.key, 5)
        if env.iid:  # each epoch drawn inside its own vmapped step (as `rollout` would draw it)
            times = st.epoch + jnp.arange(phi, dtype=jnp.int32)

            def drawn_epoch(k_e, k_d, t):
                p = env.draw(k_d, st.env, t, params)[1]
                return (*one_epoch(k_e, st, params, p), p)

            S, A_star, out, problems = jax.vmap(drawn_epoch)(
                jax.random.split(k_ep, phi), jax.random.split(k_h, phi), times
            )
            gen = st.env
        else:
            gen, problems = env.rollout(k_h, st.env, st.epoch, params, phi)
            S, A_star, out = jax.vmap(one_epoch, (0, None, None, 0))(
                jax.random.split(k_ep, phi), st, params, problems
            )
        # transitions enter in epoch order, tagged with the policy's current ||theta||^2
        norm = params_norm_sq(st.policy)
        buffer = jax.lax.fori_loop(
            0, phi, lambda i, b: buf.add(b, S[i], A_star[i], norm), st.buffer
        )
        # incremental SAE learning on the block's channels (Alg. 1)
        sae_state = st.sae
        if cfg.incremental_sae and agent.reads_code and not agent.learns_code:
            X = channel_map.preprocess(problems.h, params.stats).reshape(phi, n_in)
            sae_state, _ = jax.lax.scan(
                lambda s, kx: incremental.incremental_step(kx[0], s, sae_cfg, kx[1], params.stats),
                sae_state,
                (jax.random.split(k_sae, phi), X),
            )

        # policy update(s); Delta-delta = loss before - loss after, on the same batch
        def update(carry, k_b):
            policy, opt_state, buffer = carry
            s_b, a_b, idx = buf.sample(k_b, buffer)

            k_loss = jax.random.fold_in(k_b, 1)  # the same draw before and after the step

            def loss_fn(theta):
                return agent.loss(theta, k_loss, s_b, a_b, st.hyper.lam)

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
        average = st.average
        if cfg.average:  # Polyak averaging: avg <- d avg + (1 - d) theta after each round
            d = cfg.average
            average = jax.tree.map(lambda a, p: d * a + (1 - d) * p, average, policy)
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
            env=gen,
            average=average,
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
        if problems.dep.masked:  # deployments of varying size: how big each epoch's was
            metrics["n_ue"] = jnp.sum(problems.dep.ue_mask, axis=1)
            metrics["n_mec"] = jnp.sum(problems.dep.mec_mask, axis=1)
        return new, metrics

    def scan_blocks(st: TrainState, params: Any, n_blocks: int) -> tuple[TrainState, dict]:
        st, m = jax.lax.scan(lambda c, _: block(c, params), st, None, length=n_blocks)
        return st, jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), m)

    run_chunk = jax.jit(lambda st, params: scan_blocks(st, params, cfg.chunk_blocks))

    @jax.jit
    def train(key: jax.Array, params: Any, sae_params: Any = None) -> tuple[TrainState, dict]:
        """The whole run in one call (vmap it over keys for many seeds)."""
        return scan_blocks(init(key, sae_params, params), params, cfg.n_blocks)

    @jax.jit
    def decide(policy: Any, sae_online: Any, params: Any, problems: Problem) -> jax.Array:
        """The trained policy's decisions (no search) for problems whose channels h (B, N, M)
        share one deployment or come with one each (leading axis B): a (B, N)."""
        dep_axis = 0 if problems.dep.gain.ndim == problems.h.ndim else None

        def one(dep, h):
            return agent.act(policy, agent.observe(sae_online, params, Problem(dep=dep, h=h)))

        return jax.vmap(one, (dep_axis, 0))(problems.dep, problems.h)

    return Trainer(cfg, sae_cfg, env, agent, jax.jit(init), run_chunk, train, decide)
