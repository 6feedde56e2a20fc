"""The gymnax-style environment: generic agents step through it; rewards are 1 / p2.latency."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent.trainer import TrainConfig, make_env
from ojrs_jax.env import fixed as env
from ojrs_jax.sae.model import SAEConfig
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.p2 import latency


def rollout(agent, params, key, n_steps: int):
    """Run `agent(key, obs) -> action` for n_steps epochs; returns the per-step records."""
    k_reset, key = jax.random.split(key)
    obs, state = env.reset(k_reset, params)
    step = jax.jit(env.step)
    out = []
    for _ in range(n_steps):
        key, k_act, k_step = jax.random.split(key, 3)
        a = agent(k_act, obs)
        h, epoch = obs, int(state.epoch)
        obs, state, reward, done, info = step(k_step, state, a, params)
        out.append((h, a, epoch, float(reward), bool(done), float(info["latency"])))
    return out


def test_random_and_greedy_agents_rewards_are_inverse_latency(paper_m2):
    w_new = jnp.linspace(0.5, 1.5, paper_m2.n_ue)
    params = env.make_params(paper_m2, w_new, change_epoch=3, max_epochs=5)
    agents = {
        "random": lambda k, h: random_decision(k, paper_m2),
        "greedy": lambda k, h: greedy(paper_m2, h),
    }
    for agent in agents.values():
        steps = rollout(agent, params, jax.random.key(0), 5)
        for h, a, epoch, reward, done, lat in steps:
            w = w_new if epoch >= 3 else paper_m2.weights
            want = float(latency(paper_m2.replace(weights=w), h, a))
            np.testing.assert_allclose(lat, want, rtol=1e-6)
            np.testing.assert_allclose(reward, 1.0 / want, rtol=1e-6)
            assert done == (epoch == 4)
        assert len({float(np.sum(s[0])) for s in steps}) == 5  # a fresh channel every epoch


def test_trainer_env_is_a_params(paper_m2):
    """The trainer's Env (with its weight change) drives the same functions."""
    cfg = TrainConfig(epochs=100, change_epoch=40)
    tenv = make_env(jax.random.key(1), paper_m2, cfg, SAEConfig())
    obs, state = env.reset(jax.random.key(2), tenv)
    a = greedy(paper_m2, obs)
    _, _, reward, done, info = env.step(jax.random.key(3), state.replace(epoch=40), a, tenv)
    scn = paper_m2.replace(weights=tenv.weights_after)
    np.testing.assert_allclose(float(info["latency"]), float(latency(scn, obs, a)), rtol=1e-6)
    assert not bool(done)


def test_draws_are_independent_resets_and_ignore_the_weights(paper_m2):
    key = jax.random.key(5)
    params = env.make_params(paper_m2, jnp.linspace(0.5, 1.5, paper_m2.n_ue), change_epoch=0)
    h = np.asarray(env.draws(key, params, 4))
    assert h.shape == (4, paper_m2.n_ue, paper_m2.n_mec)
    for i, k in enumerate(jax.random.split(key, 4)):
        np.testing.assert_array_equal(h[i], np.asarray(env.reset(k, params)[0]))
    assert len({row.tobytes() for row in h}) == 4  # four different channels
    # the channel does not depend on the task weights in force
    np.testing.assert_array_equal(h, np.asarray(env.draws(key, env.make_params(paper_m2), 4)))
