"""One evaluation: float64 NRR, the scenario in force at an epoch (the trainer's rule)."""

from __future__ import annotations

import jax
import numpy as np

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.trainer import make_env
from ojrs_jax.run.evaluation import scenario_at, weights_changed
from ojrs_jax.sae.model import SAEConfig
from ojrs_jax.system.certify import latency64, nrr
from ojrs_jax.system.exact import latency_np
from ojrs_jax.system.scenario import sample_channels


def test_latency64_is_latency_np(paper_m2):
    H = np.asarray(sample_channels(jax.random.key(1), paper_m2, 5), np.float64)
    A = np.random.default_rng(0).integers(0, 3, size=(2, 5, 30))
    got = latency64(paper_m2, H, A)
    want = [[latency_np(paper_m2, H[e], A[s, e]) for e in range(5)] for s in range(2)]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(nrr(got[0], got[0]), 1.0)
    assert nrr(got, got).shape == (2,)


def test_scenario_at_switches_weights_at_change_epoch(paper_m2):
    cfg = TrainConfig(epochs=100, change_epoch=40)
    env = make_env(jax.random.key(0), paper_m2, cfg, SAEConfig())
    before, after = np.asarray(paper_m2.weights), np.asarray(env.weights_after)
    assert not np.array_equal(before, after)
    for t in (0, 39, 40, 41, 99):
        want = after if t >= 40 else before  # the new weights are in force from t = 40 on
        np.testing.assert_array_equal(scenario_at(env, t).weights, want)
    assert not weights_changed(env, 39) and weights_changed(env, 40)
