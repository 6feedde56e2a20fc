"""ojrs-jax: online joint resource scheduling in large-scale MEC networks, in JAX (Jiang et al.).

Importing the package turns off XLA's experimental YNNPACK fusion on CPU before JAX starts its
backend: with it, jaxlib 0.10.2 miscompiles some jitted, vmapped reductions (a batch of sums over
one-hot selections returned other batch elements' values; see tests/test_xla_workaround.py).
Set OJRS_KEEP_XLA_FLAGS=1 to leave XLA_FLAGS untouched.
"""

import os as _os

_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
_KEEP = _os.environ.get("OJRS_KEEP_XLA_FLAGS", "") not in ("", "0")
if not _KEEP and _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()

from ojrs_jax.config import ConfigError  # noqa: E402
from ojrs_jax.p2 import Allocation, batched_latency, latency, solve_p2  # noqa: E402
from ojrs_jax.scenario import (  # noqa: E402
    Scenario,
    SystemConfig,
    load_scenario,
    make_scenario,
    sample_channel,
    sample_channels,
    save_scenario,
)

# Heavier entry points load on first use, so `import ojrs_jax` stays light (ojrs-decide's start).
_LAZY = {
    "load_run": "ojrs_jax.scheduler",
    "Scheduler": "ojrs_jax.scheduler",
    "TrainConfig": "ojrs_jax.train",
    "make_trainer": "ojrs_jax.train",
    "SAEConfig": "ojrs_jax.sae",
    "ASAConfig": "ojrs_jax.asa",
    "ASAParams": "ojrs_jax.asa",
    "build": "ojrs_jax.pipeline",
    "train_from_config": "ojrs_jax.experiments.train_run",
    "compose_config": "ojrs_jax.experiments.train_run",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ojrs_jax' has no attribute {name!r}")


__all__ = [
    "ASAConfig",
    "ASAParams",
    "Allocation",
    "ConfigError",
    "SAEConfig",
    "Scheduler",
    "TrainConfig",
    "build",
    "compose_config",
    "load_run",
    "make_trainer",
    "train_from_config",
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
