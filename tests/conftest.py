"""Shared fixtures: paper-sized and heterogeneous scenarios with channel draws."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import settings

from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

# Property tests draw the same examples on every run (CI and the README's `pytest` give one
# verdict per commit); `HYPOTHESIS_PROFILE=explore pytest tests/test_properties.py` searches
# with fresh random examples, as a hunt for new failing cases.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The commands run by the tests keep their compilation cache out of the user's cache directory.
if "OJRS_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["OJRS_CACHE_DIR"] = tempfile.mkdtemp(prefix="ojrs-test-xla-")


def hetero(scn, seed: int = 0):
    """The same deployment with uneven weights, task sizes and MEC speeds (breaks symmetry)."""
    rng = np.random.default_rng(seed)
    n, m = scn.n_ue, scn.n_mec
    f32 = jnp.float32
    return scn.replace(
        weights=jnp.asarray(rng.uniform(0.2, 5.0, n), f32),
        cycles=jnp.asarray(rng.uniform(0.2e9, 3e9, n), f32),
        data_bits=jnp.asarray(rng.uniform(2e5, 2e6, n), f32),
        f_mec=jnp.asarray(rng.uniform(5e9, 60e9, m), f32),
    )


@pytest.fixture(scope="session")
def paper_m2():
    return make_scenario(SystemConfig(n_ue=30, n_mec=2, noise=2e-7, seed=2))


@pytest.fixture(scope="session", params=[1, 2, 3, 4, 5])
def hetero_scn(request):
    return hetero(
        make_scenario(SystemConfig(n_ue=30, n_mec=request.param, seed=request.param)),
        seed=request.param,
    )


@pytest.fixture(scope="session")
def channels_m2(paper_m2):
    return sample_channels(jax.random.key(7), paper_m2, 16)


# `ojrs-train` overrides of a tiny, fast run (N = 6, M = 2), shared by the CLI tests.
TINY_CLI_ARGS = [
    "scale=tiny",
    "sae.latent=8",
    "sae.steps=50",
    "sae.batch_size=32",
    "sae.memory_size=64",
    "asa.k=16",
    "asa.max_iter=8",
    "asa.t_sa0=4",
    "train.epochs=200",
    "train.phi=5",
    "train.batch=32",
    "train.buffer=64",
    "train.chunk=100",
    "train.change_epoch=100",
    "sae_pretrain.draws=256",
    "eval.draws=50",
]


# `ojrs-train-any` overrides of a tiny run on random deployments of N <= 6 UEs and M <= 2 MECs,
# shared by the any-deployment tests.
TINY_ANY_ARGS = [
    "system.noise=2e-7",
    "deployment.n_ue=[2,6]",
    "deployment.n_max=6",
    "deployment.n_mec=[1,2]",
    "deployment.m_max=2",
    "train.epochs=40",
    "train.phi=10",
    "train.batch=8",
    "train.updates=2",
    "train.buffer=32",
    "train.link_width=8",
    "train.score_hidden=8",
    "train.chunk=20",
    "asa.k=8",
    "asa.max_iter=10",
    "asa.t_sa0=5",
    "eval.draws=4",
]


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """One finished tiny `ojrs-train` run (a subprocess), shared by the CLI tests: read it or
    copy it, never change it."""
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("train") / "run"
    # tensorboard=true: test_cli_train checks the events (test_train_log_and_tensorboard_events)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "ojrs_jax.cli.train",
            *TINY_CLI_ARGS,
            "tensorboard=true",
            f"hydra.run.dir={d}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "NRR" in p.stdout
    # stdout holds the results, stderr no log lines (they go to train.log)
    assert "[INFO]" not in p.stdout + p.stderr
    return d


def with_overrides(args: list[str], *overrides: str) -> list[str]:
    """`args` with the keys of `overrides` replaced (Hydra rejects a key given twice)."""
    keys = {o.split("=")[0] for o in overrides}
    return [a for a in args if a.split("=")[0] not in keys] + list(overrides)


def exhaustive_optima(scn, H) -> np.ndarray:
    """Optimal latency of each draw in H by enumeration, one jitted call per draw (a jit(vmap)
    over the draws is what exposed the jaxlib 0.10.2 miscompile; see test_xla_workaround)."""
    from ojrs_jax.search.baselines import exhaustive

    best = jax.jit(lambda h: exhaustive(scn, h)[1])
    return np.array([float(best(h)) for h in H])


def fixed_trainer(cfg, sae_cfg, scn):
    """Algorithm 3's trainer on the fixed deployment `scn` with the agent of `cfg`."""
    from ojrs_jax.agent.agents import make_agent
    from ojrs_jax.agent.trainer import make_trainer
    from ojrs_jax.env.fixed import FixedDeployment

    env = FixedDeployment(scn)
    return make_trainer(cfg, env, make_agent(cfg, sae_cfg, env), sae_cfg)


def decide_channels(trainer, policy, online, params, H):
    """`trainer.decide` on channels H (B, N, M) of the fixed deployment of `params`."""
    from ojrs_jax.system.deployment import Problem, from_scenario

    return trainer.decide(policy, online, params, Problem(dep=from_scenario(params.scn), h=H))
