"""Shared fixtures: paper-sized and heterogeneous scenarios with channel draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ojrs_jax.scenario import SystemConfig, make_scenario, sample_channels


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
