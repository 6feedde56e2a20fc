"""The offloading task as gymnax environments, against gymnax 1.0 itself and the model.

FixedDeployment and DeploymentDistribution step like gymnax's own `Environment.step` (the
unbound gymnax method run on our environment gives the same transition), gymnax's wrappers and
a purejaxrl-style vmapped rollout run them unchanged, and every reward is 1 / L of the action on
the epoch's problem, computed here by the independent float64 reference (`reference_model`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_model import RefModel

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.trainer import make_env
from ojrs_jax.env import fixed as env_mod
from ojrs_jax.env.distribution import DeploymentDistribution
from ojrs_jax.env.fixed import FixedDeployment
from ojrs_jax.sae.model import SAEConfig
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.deployment import DeploymentConfig, unpad
from ojrs_jax.system.scenario import SystemConfig

gymnax_env = pytest.importorskip("gymnax.environments.environment")
purerl = pytest.importorskip("gymnax.wrappers.purerl")
spaces = pytest.importorskip("gymnax.environments.spaces")

SYS = SystemConfig(noise=2e-7)
DIST = DeploymentConfig(kind="mobile", n_ue=(3, 6), n_max=6, n_mec=(1, 3), m_max=3, episode=4)


def ref_latency(scn, h, a) -> float:
    return RefModel(scn).latency(np.asarray(h, np.float64), np.asarray(a))


def test_fixed_rewards_are_inverse_latency_with_the_weights_in_force(paper_m2):
    """Greedy and Random step through the paper's deployment: reward 1 / L under the weights in
    force at each epoch (the change at epoch 3), a fresh channel each epoch, and the episode
    truncated after `max_steps_in_episode` epochs with an automatic reset."""
    env = FixedDeployment(paper_m2)
    w_new = jnp.linspace(0.5, 1.5, paper_m2.n_ue)
    params = env_mod.make_params(paper_m2, w_new, change_epoch=3, max_epochs=5)
    agents = {
        "random": lambda k, h: random_decision(k, paper_m2),
        "greedy": lambda k, h: greedy(paper_m2, h),
    }
    step = jax.jit(env.step)
    for agent in agents.values():
        key = jax.random.key(0)
        obs, state = env.reset(jax.random.key(1), params)
        seen = []
        for t in range(6):
            key, k_act, k_step = jax.random.split(key, 3)
            a = agent(k_act, obs)
            assert int(state.time) == t % 5  # epochs since the reset after epoch 4
            w = np.asarray(w_new if int(state.time) >= 3 else paper_m2.weights)
            want = ref_latency(paper_m2.replace(weights=w), obs, a)
            obs2, state, reward, terminated, truncated, info = step(k_step, state, a, params)
            np.testing.assert_allclose(float(info["latency"]), want, rtol=1e-5)
            np.testing.assert_allclose(float(reward), 1.0 / want, rtol=1e-5)
            assert not bool(terminated) and bool(truncated) == (t == 4)
            seen.append(float(np.sum(obs)))
            obs = obs2
        assert len(set(seen)) == 6  # a fresh channel every epoch


def test_trainer_params_drive_the_environment(paper_m2):
    """The parameters a run trains on (`make_env`: the weight change, the channel statistics)
    are the environment's own parameters."""
    env = FixedDeployment(paper_m2)
    cfg = TrainConfig(epochs=100, change_epoch=40)
    params = make_env(jax.random.key(1), paper_m2, cfg, SAEConfig())
    _, state = env.reset(jax.random.key(2), params)
    a = greedy(paper_m2)
    # epoch 39 still has the old weights; the problem drawn for epoch 40 the new ones
    obs, state, *_ = env.step(jax.random.key(3), state.replace(time=jnp.int32(39)), a, params)
    assert int(state.time) == 40
    np.testing.assert_array_equal(state.problem.dep.scn.weights, params.weights_after)
    out = env.step(jax.random.key(4), state, a, params)
    scn = paper_m2.replace(weights=np.asarray(params.weights_after))
    np.testing.assert_allclose(float(out[5]["latency"]), ref_latency(scn, obs, a), rtol=1e-5)
    assert int(params.change_epoch) == 40 and params.stats is not None


def test_draws_are_independent_resets_and_ignore_the_weights(paper_m2):
    env = FixedDeployment(paper_m2)
    key = jax.random.key(5)
    params = env_mod.make_params(paper_m2, jnp.linspace(0.5, 1.5, paper_m2.n_ue), change_epoch=0)
    h = np.asarray(env_mod.draws(key, params, 4))
    assert h.shape == (4, paper_m2.n_ue, paper_m2.n_mec)
    for i, k in enumerate(jax.random.split(key, 4)):
        np.testing.assert_array_equal(h[i], np.asarray(env.reset(k, params)[0]))
    assert len({row.tobytes() for row in h}) == 4  # four different channels
    # the channel does not depend on the task weights in force
    np.testing.assert_array_equal(
        h, np.asarray(env_mod.draws(key, env_mod.make_params(paper_m2), 4))
    )


def environments(paper_m2):
    return {
        "fixed": (FixedDeployment(paper_m2), None),
        "mobile": (DeploymentDistribution(DIST, SYS), None),
    }


@pytest.mark.parametrize("kind", ["fixed", "mobile"])
def test_step_is_gymnax_step(kind, paper_m2):
    """gymnax's own `Environment.step` and `reset`, run on our environment, give our transitions
    (auto-reset, `terminated`, `truncated`, `final_observation`) leaf for leaf."""
    env = environments(paper_m2)[kind][0]
    params = env.default_params
    if kind == "fixed":
        params = params.replace(max_steps_in_episode=jnp.int32(2))
    obs, state = env.reset(jax.random.key(0), params)
    g_obs, g_state = gymnax_env.Environment.reset(env, jax.random.key(0), params)
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(g_obs))
    for t in range(5):
        key = jax.random.key(10 + t)
        a = env.action_space(params).sample(jax.random.fold_in(key, 1))
        ours = env.step(key, state, a, params)
        theirs = gymnax_env.Environment.step(env, key, state, a, params)
        for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        state = ours[1]


@pytest.mark.parametrize("kind", ["fixed", "mobile"])
def test_gymnax_wrappers_and_a_purejaxrl_rollout(kind, paper_m2):
    """gymnax's FlattenObservationWrapper and LogWrapper around our environment, four of them
    vmapped and stepped by a jitted `lax.scan` with random actions (the rollout of purejaxrl's
    `make_train`): episode returns add up the rewards, and every reward is 1 / L of its action
    on the real part of the epoch's problem."""
    base = environments(paper_m2)[kind][0]
    env = purerl.LogWrapper(purerl.FlattenObservationWrapper(base))
    params = base.default_params
    if kind == "fixed":
        params = params.replace(max_steps_in_episode=jnp.int32(3))
    space = env.observation_space(params)
    assert isinstance(space, spaces.Box) and len(space.shape) == 1
    n_envs, steps = 4, 8

    @jax.jit
    def rollout(key):
        k_reset, key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, n_envs), params)

        def body(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            acts = jax.vmap(base.action_space(params).sample)(jax.random.split(k_act, n_envs))
            problem = state.env_state.problem
            nxt = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(k_step, n_envs), state, acts, params
            )
            obs2, state2, reward, terminated, truncated, info = nxt
            record = (problem, acts, reward, truncated, info["returned_episode_returns"])
            return (obs2, state2), (obs.shape, record)

        _, (shapes, out) = jax.lax.scan(body, (obs, state), jax.random.split(key, steps))
        return out

    problems, acts, rewards, truncated, returned = rollout(jax.random.key(3))
    rewards, truncated = np.asarray(rewards), np.asarray(truncated)
    assert rewards.shape == (steps, n_envs) and np.all(rewards > 0)
    host = jax.tree.map(np.asarray, problems)
    for t in range(steps):
        for e in range(n_envs):
            one = jax.tree.map(lambda x, t=t, e=e: x[t, e], host)
            if one.dep.masked:
                scn, h = unpad(one.dep, one.h)
                a = np.asarray(acts[t, e])[np.asarray(one.dep.ue_mask)]
                a = np.where(a > int(np.sum(one.dep.mec_mask)), 0, a)  # a padded MEC: local
            else:
                scn, h, a = one.dep.scn, one.h, np.asarray(acts[t, e])
            np.testing.assert_allclose(1.0 / rewards[t, e], ref_latency(scn, h, a), rtol=1e-4)
    # LogWrapper's episode return is the sum of the rewards since the last reset
    ends = np.argwhere(truncated)
    assert ends.size > 0
    for t, e in ends:
        start = max([s + 1 for s, ee in ends if ee == e and s < t], default=0)
        np.testing.assert_allclose(returned[t, e], rewards[start : t + 1, e].sum(), rtol=1e-5)
