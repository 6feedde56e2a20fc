"""ojrs-jax: online joint resource scheduling in large-scale MEC networks, in JAX (Jiang et al.)."""

from ojrs_jax.p2 import Allocation, batched_latency, latency, solve_p2
from ojrs_jax.scenario import (
    ConfigError,
    Scenario,
    SystemConfig,
    load_scenario,
    make_scenario,
    sample_channel,
    sample_channels,
    save_scenario,
)

__all__ = [
    "Allocation",
    "ConfigError",
    "Scenario",
    "SystemConfig",
    "batched_latency",
    "latency",
    "load_scenario",
    "make_scenario",
    "sample_channel",
    "sample_channels",
    "save_scenario",
    "solve_p2",
]
