"""ojrs-jax: online joint resource scheduling in large-scale MEC networks, in JAX (Jiang et al.).

jaxlib 0.10.2 miscompiles some jitted, vmapped reductions on CPU (a batch of sums over one-hot
selections returned other batch elements' values; JAX issue 39103, a regression from 0.10.1;
see tests/test_xla_workaround.py). The package requires a jaxlib without it (pyproject.toml) and,
for safety, importing it turns off XLA's experimental YNNPACK fusion on CPU, the cause, before
JAX starts its backend. If JAX had already started it (something computed with JAX before
`import ojrs_jax`) the flag cannot act; on an affected jaxlib a RuntimeWarning says so.
Set OJRS_KEEP_XLA_FLAGS=1 to leave XLA_FLAGS untouched.

jaxlib 0.10.1 logs a false "Loading XLA:CPU AOT result. Target machine feature +prefer-no-gather
is not supported" error on stderr for every compiled function it loads from the persistent
compilation cache (XLA issue 44565: LLVM tuning flags taken for CPU features; the code loads and
runs). On that jaxlib only, and unless TF_CPP_MIN_LOG_LEVEL holds another value than JAX's
default (1, which `import jax` sets and child processes inherit), importing the package sets
TF_CPP_MIN_LOG_LEVEL=3 (XLA's C++ log shows fatal errors only) before JAX loads, so that the
commands' stderr carries their own messages.
"""

import os as _os
import sys as _sys

_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
_KEEP = _os.environ.get("OJRS_KEEP_XLA_FLAGS", "") not in ("", "0")
_HAD_FLAG = _FLAG in _os.environ.get("XLA_FLAGS", "")
if not _KEEP and not _HAD_FLAG:
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()


def _quiet_aot_loader() -> None:
    """TF_CPP_MIN_LOG_LEVEL=3 on jaxlib 0.10.1 (its AOT loader's false error), unless chosen."""
    if _os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1") != "1" or "jaxlib" in _sys.modules:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        if version("jaxlib") == "0.10.1":
            _os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    except PackageNotFoundError:
        pass


_quiet_aot_loader()


def _jaxlib_affected(version: str) -> bool:
    """Whether a jaxlib version may have the CPU miscompile: 0.10.2 and later (0.10.1 computes
    correctly; later releases are not known to be fixed)."""
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return True
    return parts >= (0, 10, 2)


def _warn_if_backend_started() -> None:
    """Warn when JAX's backend started before this import without the flag (it then cannot act)
    and the running jaxlib may miscompile."""
    if _KEEP or _HAD_FLAG or "jax._src.xla_bridge" not in _sys.modules:
        return
    try:
        import jaxlib.version
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
        version = jaxlib.version.__version__
    except (ImportError, AttributeError):  # a JAX without these internals: nothing to say
        return
    if started and _jaxlib_affected(version):
        import warnings

        warnings.warn(
            f"JAX had started its backend before `import ojrs_jax`, so the XLA flag {_FLAG} that "
            f"avoids jaxlib {version}'s CPU miscompile (JAX issue 39103) has no effect in this "
            "process: some jitted, vmapped sums on CPU may be wrong. Import ojrs_jax before "
            f"computing with JAX, or set XLA_FLAGS={_FLAG} before Python starts, or install "
            'jaxlib 0.10.1 (pip install "jaxlib==0.10.1").',
            RuntimeWarning,
            stacklevel=3,
        )


_warn_if_backend_started()

from ojrs_jax.core.settings import ConfigError  # noqa: E402
from ojrs_jax.system.p2 import Allocation, batched_latency, latency, solve_p2  # noqa: E402
from ojrs_jax.system.scenario import (  # noqa: E402
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
    "load_run": "ojrs_jax.run.scheduler",
    "Scheduler": "ojrs_jax.run.scheduler",
    "TrainConfig": "ojrs_jax.agent.config",
    "make_trainer": "ojrs_jax.agent.trainer",
    "make_agent": "ojrs_jax.agent.agents",
    "FixedDeployment": "ojrs_jax.env.fixed",
    "DeploymentDistribution": "ojrs_jax.env.distribution",
    "DeploymentConfig": "ojrs_jax.system.deployment",
    "Deployment": "ojrs_jax.system.deployment",
    "Problem": "ojrs_jax.system.deployment",
    "certify": "ojrs_jax.system.certify",
    "make_deployment": "ojrs_jax.run.inputs",
    "SAEConfig": "ojrs_jax.sae.model",
    "ASAConfig": "ojrs_jax.search.asa",
    "ASAParams": "ojrs_jax.search.asa",
    "build": "ojrs_jax.run.build",
    "train_from_config": "ojrs_jax.app.compose",
    "compose_config": "ojrs_jax.app.compose",
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
    "Deployment",
    "DeploymentConfig",
    "DeploymentDistribution",
    "FixedDeployment",
    "Problem",
    "certify",
    "make_agent",
    "make_deployment",
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
