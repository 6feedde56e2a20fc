"""What a policy reads, how it acts and what it learns from (paper eqs. 19, 24-25, Algorithm 1).

An `Agent` binds the policy network of `train.arch` to its observation of an epoch's problem:
- `state=channel`: the channel h preprocessed into x = vec(h / gbar) (or its log, or minmax);
- `state=sae`: the 2r-SAE code s = encoder(x) (eq. 19) of the online encoder, which Algorithm 1
  keeps training during DRL (`train.incremental_sae`) by the SAE's own loss; with
  `train.code_weight` > 0 the code is learned for the decision instead: the agent's parameters
  are the policy and the SAE together, the buffer stores x, and eq. 25 on encoder(x) plus
  code_weight x the SAE's loss (eq. 23) trains both in one step (Algorithm 1's online learning
  and the policy's update are then the same Adam step);
- `state=deployment` (the feature policy): the whole padded deployment and its channel, so one
  network decides for any N and M.
The observation `observe(...)` is what the replay buffer stores; `act` is the per-UE argmax of
eq. 24 and `loss` is eq. 25 on a batch of stored observations and searched actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import PerUEPolicy, cross_entropy, init_policy, policy_loss
from ojrs_jax.agent.policy import act as policy_act
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.env.base import OffloadingEnv
from ojrs_jax.env.distribution import DeploymentDistribution
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.search.asa import label_channels
from ojrs_jax.system.deployment import Problem
from ojrs_jax.system.scenario import sample_channels

Params = Any


class Agent(NamedTuple):
    """Bound pure functions of one policy on one environment."""

    net: Any  # the flax module of the policy
    state_dim: int  # width of an observation s (a replay buffer row)
    reads_code: bool  # the policy reads the 2r-SAE code (its encoder learns online, Alg. 1)
    learns_code: bool  # the SAE is part of the parameters and learns with the policy (eq. 25)
    init: Callable[..., Params]  # (key, pretrained SAE or None) -> initial parameters theta
    observe: Callable[[Any, Any, Problem], jax.Array]  # (encoder, env params, problem) -> s
    act: Callable[[Params, jax.Array], jax.Array]  # (theta, s) -> a (N,) int32
    # eq. 25 (theta, key, S, A*, lam); the key draws the fresh channels of `train.distill`
    loss: Callable[[Params, jax.Array, jax.Array, jax.Array, Any], jax.Array]


def _cast_like(start: Any, params: Any) -> Any:
    """Parameters `start` read from a file, in the dtypes and shapes of `params`."""
    return jax.tree.map(lambda p, q: jnp.asarray(q, p.dtype).reshape(p.shape), params, start)


def make_agent(
    cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig, env: OffloadingEnv, start: Params = None
) -> Agent:
    """The agent of `cfg.arch` / `cfg.state` on `env`; `start` (parameters of a finished run,
    `train.init_from`) replaces the random initial policy."""
    n_ue, n_mec = env.n_ue, env.n_mec
    net = cfg.policy_net(n_ue, n_mec, sae_cfg)
    if cfg.any_deployment:
        if not isinstance(env, DeploymentDistribution):
            return _feature_agent(cfg, net, _fixed_template(env), start)
        return _feature_agent(cfg, net, env.template, start)
    if isinstance(env, DeploymentDistribution):
        raise ConfigError(
            f"train.arch={cfg.arch} decides for one deployment; deployment={env.cfg.kind} needs "
            "the policy for any deployment (train=any, or train.arch=feature "
            "train.state=deployment)"
        )
    if cfg.arch == "per_ue_code" and sae_cfg.structure != "per_ue":
        raise ConfigError("train.arch=per_ue_code needs sae.structure=per_ue")
    n_in = n_ue * n_mec
    code = cfg.state == "sae"
    state_dim = sae_cfg.state_width(n_ue) if code else n_in
    if cfg.code_weight > 0:
        return _joint_agent(cfg, sae_cfg, env, net, state_dim, start)

    def init(key: jax.Array, sae: Any = None) -> Params:
        params = init_policy(key, net, state_dim, cfg.local_bias)
        return params if start is None else _cast_like(start, params)

    def observe(encoder: Any, params: Any, p: Problem) -> jax.Array:
        x = channel_map.preprocess(p.h, params.stats).reshape(*p.h.shape[:-2], n_in)
        return sae_mod.encode(encoder, sae_cfg, x) if code else x

    def act(theta: Params, s: jax.Array) -> jax.Array:
        return policy_act(net, theta, s)

    def loss(theta: Params, key: jax.Array, S: jax.Array, A: jax.Array, lam: Any) -> jax.Array:
        return policy_loss(net, theta, S, A, lam)

    return Agent(net, state_dim, code, False, init, observe, act, loss)


def _joint_agent(
    cfg: TrainConfig,
    sae_cfg: sae_mod.SAEConfig,
    env: OffloadingEnv,
    net: Any,
    code_width: int,
    start: Params,
) -> Agent:
    """The policy on a code learned for the decision: theta = {"policy", "encoder"} (the whole
    SAE, so the decoder keeps the code a compression of h); the buffer stores x; the loss is
    eq. 25 on encoder(x) plus `code_weight` x the SAE's loss (eq. 23 for sae.variant=2r_sae)."""
    n_in = env.n_ue * env.n_mec
    stats = channel_map.channel_stats(env.scn, sae_cfg.preprocess)
    weight = cfg.code_weight
    # train.distill: the per-UE policy of `train=tuned` on the channel, a teacher during training
    teacher = PerUEPolicy(n_ue=env.n_ue, n_mec=env.n_mec, hidden=cfg.ue_hidden, embed=cfg.ue_embed)

    def warm_start(key: jax.Array, policy: Params, sae: Params) -> Params:
        """`cfg.warm_start` Adam steps of the joint loss on ASA labels (from Greedy, asa.max_iter
        iterations) of `cfg.warm_start_draws` channels of the deployment, before DRL. `sae` may
        hold several pretrained initialisations (stacked, `sae.restarts` > 1): each is fitted
        with a copy of the policy, and the one whose decisions fit held-out labels best (the
        cross-entropy of eq. 25 on an eighth of the channels kept out of the fit) is kept."""
        k_h, k_lab, k_fit = jax.random.split(key, 3)
        h = sample_channels(k_h, env.scn, cfg.warm_start_draws)
        labels = label_channels(
            k_lab, env.scn, h, cfg.asa_params, k=cfg.asa.k, n_iter=cfg.asa.max_iter
        )
        x = channel_map.preprocess(h, stats)

        def loss(th: Params, xb: jax.Array, a: jax.Array) -> jax.Array:
            return joint_loss(net, sae_cfg, stats, weight, th, xb, a, cfg.lam)

        def fit(enc: Params, x_fit: jax.Array, a_fit: jax.Array) -> Params:
            theta = {"policy": policy, "encoder": enc}
            return fit_offline(
                k_fit, loss, theta, x_fit, a_fit, cfg.warm_start, cfg.batch, cfg.learning_rate
            )

        template = jax.eval_shape(lambda k: sae_mod.init_sae(k, sae_cfg, n_in, env.n_mec), key)
        if jax.tree.leaves(sae)[0].ndim == jax.tree.leaves(template)[0].ndim:  # one SAE
            return fit(sae, x, labels)
        n_val = max(1, cfg.warm_start_draws // 8)
        fitted = jax.vmap(fit, in_axes=(0, None, None))(sae, x[n_val:], labels[n_val:])

        def held_out(th: Params) -> jax.Array:
            return cross_entropy(
                net, th["policy"], sae_mod.encode(th["encoder"], sae_cfg, x[:n_val]), labels[:n_val]
            )

        best = jnp.argmin(jax.vmap(held_out)(fitted))
        return jax.tree.map(lambda a: a[best], fitted)

    def init(key: jax.Array, sae: Any = None) -> Params:
        if sae is None:
            sae = sae_mod.init_sae(key, sae_cfg, n_in, env.n_mec)
        policy = init_policy(key, net, code_width, cfg.local_bias)
        if start is not None:
            policy = _cast_like(start, policy)
        if cfg.warm_start:
            theta = warm_start(jax.random.fold_in(key, 1), policy, sae)
        else:
            theta = {"policy": policy, "encoder": sae}
        if cfg.distill:
            theta["teacher"] = init_policy(jax.random.fold_in(key, 2), teacher, n_in)
        return theta

    def observe(encoder: Any, params: Any, p: Problem) -> jax.Array:
        return channel_map.preprocess(p.h, params.stats).reshape(*p.h.shape[:-2], n_in)

    def act(theta: Params, x: jax.Array) -> jax.Array:
        return policy_act(net, theta["policy"], sae_mod.encode(theta["encoder"], sae_cfg, x))

    def loss(theta: Params, key: jax.Array, X: jax.Array, A: jax.Array, lam: Any) -> jax.Array:
        if not cfg.distill:
            return joint_loss(net, sae_cfg, stats, weight, theta, X, A, lam)
        h = sample_channels(key, env.scn, cfg.distill)
        fresh = channel_map.preprocess(h, stats).reshape(cfg.distill, n_in)
        return joint_loss(
            net, sae_cfg, stats, weight, theta, X, A, lam, teacher, fresh, cfg.distill_temperature
        )

    return Agent(net, n_in, True, True, init, observe, act, loss)


def joint_loss(
    net: Any,
    sae_cfg: sae_mod.SAEConfig,
    stats: channel_map.ChannelStats,
    weight: float,
    theta: Params,
    X: jax.Array,
    A: jax.Array,
    lam: Any,
    teacher: Any = None,
    X_fresh: jax.Array | None = None,
    temperature: float = 1.0,
) -> jax.Array:
    """Eq. 25 of the policy theta["policy"] on the code encoder(X) plus `weight` x the SAE's own
    loss (eq. 23, or MSE by `sae_cfg.variant`) of theta["encoder"] on X (B, N*M).

    With a `teacher` (`train.distill`): the teacher theta["teacher"], reading the channel,
    learns eq. 25 from the searched actions A of the replayed rows X; the code's policy learns
    the teacher's option probabilities (held fixed) on X and the fresh channels X_fresh through
    the code, plus lambda/2 ||policy||^2; the SAE's loss stays on X. A `temperature` T != 1
    (`train.distill_temperature`) divides the teacher's logits before its softmax and the
    policy's in its cross-entropy, which it multiplies by T^2 (Hinton et al. 2015)."""
    if teacher is None:
        s = sae_mod.encode(theta["encoder"], sae_cfg, X)
        code_loss = sae_mod.sae_loss(theta["encoder"], sae_cfg, X, stats)
        return policy_loss(net, theta["policy"], s, A, lam) + weight * code_loss
    X_all = jnp.concatenate([X, X_fresh])
    t_logits = teacher.apply(theta["teacher"], X_all)
    if temperature != 1.0:
        t_logits = t_logits / temperature
    p_teacher = jax.nn.softmax(t_logits, axis=-1)
    s = sae_mod.encode(theta["encoder"], sae_cfg, X_all)
    target = jax.lax.stop_gradient(p_teacher)
    student = policy_loss(net, theta["policy"], s, target, lam, temperature)
    code_loss = sae_mod.sae_loss(theta["encoder"], sae_cfg, X, stats)
    return policy_loss(teacher, theta["teacher"], X, A, lam) + student + weight * code_loss


def fit_offline(
    key: jax.Array,
    loss: Callable[[Any, jax.Array, jax.Array], jax.Array],
    params: Any,
    inputs: jax.Array,
    labels: jax.Array,
    steps: int,
    batch: int,
    learning_rate: float,
) -> Any:
    """Adam on `loss(params, inputs[idx], labels[idx])` over `steps` uniform minibatches of
    `batch` rows (an offline fit: the warm start of `train.warm_start`, the code study's fits)."""
    opt = optax.adam(learning_rate)

    def body(carry, k):
        p, o = carry
        idx = jax.random.randint(k, (batch,), 0, inputs.shape[0])
        g = jax.grad(loss)(p, inputs[idx], labels[idx])
        u, o = opt.update(g, o, p)
        return (optax.apply_updates(p, u), o), None

    @jax.jit
    def fit(params, key):
        (p, _), _ = jax.lax.scan(body, (params, opt.init(params)), jax.random.split(key, steps))
        return p

    return fit(params, key)


def _fixed_template(env: OffloadingEnv) -> Problem:
    """A problem of the environment's shapes, for the feature policy on a fixed deployment."""
    _, state = jax.eval_shape(env.reset_env, jax.random.key(0), env.default_params)
    return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), state.problem)


def _feature_agent(cfg: TrainConfig, net: fp.FeaturePolicy, template: Problem, start) -> Agent:
    """The feature policy: the observation is the whole problem, flattened (eqs. 24-25)."""
    flat0, unravel = ravel_pytree(template)
    # every UE real in the initialisation's dummy deployment, so no layer sees only padding
    dep0 = template.dep.replace(ue_mask=jnp.ones_like(template.dep.ue_mask))
    h0 = jnp.ones_like(template.h)

    def init(key: jax.Array, sae: Any = None) -> Params:
        params = fp.init_params(key, net, dep0, h0)
        return params if start is None else _cast_like(start, params)

    def observe(encoder: Any, params: Any, p: Problem) -> jax.Array:
        return ravel_pytree(p)[0]

    def act(theta: Params, s: jax.Array) -> jax.Array:
        p = unravel(s)
        return fp.act(net, theta, p.dep, p.h)

    def loss(theta: Params, key: jax.Array, S: jax.Array, A: jax.Array, lam: Any) -> jax.Array:
        P = jax.vmap(unravel)(S)
        return fp.loss(net, theta, P.dep, P.h, A, lam)

    return Agent(net, int(flat0.shape[0]), False, False, init, observe, act, loss)
