"""Typed views of the Hydra configuration: `DictConfig` in, frozen dataclasses out (no equation).

Entry points call these once at start-up; jitted code never sees a `DictConfig`. A bad value
raises `ConfigError` with one line naming the field, which `cli_guard` turns into exit code 2.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ojrs_jax.scenario import ConfigError, SystemConfig

CONFIG_PATH = "pkg://ojrs_jax.conf"


def to_container(cfg: DictConfig | dict) -> dict:
    """Resolved plain dict of a config node."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def system_config(cfg: DictConfig | dict) -> SystemConfig:
    """Merge the `scale` and `system` groups into one validated `SystemConfig`."""
    c = to_container(cfg)
    merged = {**c.get("system", {}), **c.get("scale", {})}
    return SystemConfig.from_mapping(merged)


def positive_int(c: dict, key: str, where: str) -> int:
    """Read a positive integer setting, naming it on failure."""
    v = c.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConfigError(f"{where}{key} must be a positive integer, got {v!r}")
    return v


def cli_guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report `ConfigError` as one line on stderr and exit with status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Hydra logs at INFO; JAX's backend probing ("Unable to initialize backend 'tpu'") is noise.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
