"""Settings: `ConfigError`, the validators of typed configs and the renamed settings (no equation).

The ground of the package: every module that validates a setting raises `ConfigError` from here,
with one line naming the field and the value. Typed configs (`SystemConfig`, `TrainConfig`, ...)
are built once from plain mappings at an entry point; jitted code never sees a `DictConfig`.
`RENAMED` maps the settings renamed so that every count of channel draws is called `draws`: the
old names still work, with a warning, on the command line and in a stored config.yaml.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import fields
from typing import Any


class ConfigError(ValueError):
    """A configuration or input value is invalid; the message names the field and the value."""


def is_int(v: Any) -> bool:
    """An integer that is not a bool (YAML's `true` is not a width)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def split_settings(m: dict, section: str, *classes: type) -> list[dict]:
    """Split a config mapping into keyword arguments for each dataclass in `classes` (e.g. a
    static config and a pytree of sweepable leaves); a key none of them has fails by name."""
    names = [{f.name for f in fields(c)} for c in classes]
    unknown = sorted(set(m).difference(*names))
    if unknown:
        raise ConfigError(f"unknown {section} setting {unknown[0]!r}")
    return [{k: v for k, v in m.items() if k in n} for n in names]


# float32's range: the model computes in float32, so a setting outside it would overflow to inf
# or flush to zero there, however fine it looks in the YAML
F32_MAX = 3.4028234663852886e38
F32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def in_float32(v: float, name: str) -> None:
    """`ConfigError` when a positive number overflows float32 or falls below its normal range."""
    if v > F32_MAX:
        raise ConfigError(f"{name} = {v!r} overflows float32 (max {F32_MAX:.3g})")
    if 0 < v < F32_TINY:
        raise ConfigError(f"{name} = {v!r} is below float32's normal range ({F32_TINY:.3g})")


def positive_int(c: dict, key: str, where: str) -> int:
    """Read a positive integer setting, naming it on failure."""
    v = c.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConfigError(f"{where}{key} must be a positive integer, got {v!r}")
    return v


def integer(c: dict, key: str, where: str, default: int = 0) -> int:
    """Read an integer setting (default when absent), naming it on failure."""
    v = c.get(key, default)
    if not is_int(v):
        raise ConfigError(f"{where}{key} must be an integer, got {v!r}")
    return v


# Seeds become JAX PRNG keys, whose raw data is 32 bits here: a larger or negative seed would
# alias another (key(2**32) == key(0)), so seeds are 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1


def seed_value(c: dict, key: str = "seed", where: str = "", default: int = 0) -> int:
    """Read a PRNG seed (default when absent): an integer in 0 .. SEED_MAX, named on failure."""
    v = integer(c, key, where, default)
    if not 0 <= v <= SEED_MAX:
        raise ConfigError(f"{where}{key} must be an integer in 0..{SEED_MAX}, got {v!r}")
    return v


def positive_number(c: dict, key: str, where: str, default: float) -> float:
    """Read a finite positive number setting (default when absent), naming it on failure."""
    v = c.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{where}{key} must be a finite positive number, got {v!r}")
    return float(v)


def whole_blocks(epochs: int, phi: int, where: str) -> None:
    """Algorithm 3 trains in whole blocks of phi epochs (one policy update per block): epochs
    that phi does not divide are refused, naming both and the nearest valid epochs."""
    if epochs % phi:
        lo = epochs - epochs % phi
        near = " or ".join(f"{where}epochs={e}" for e in (lo, lo + phi) if e > 0)
        raise ConfigError(
            f"{where}epochs ({epochs}) must be a multiple of {where}phi ({phi}): training runs "
            f"in whole blocks of phi epochs (nearest: {near})"
        )


# Settings renamed so that every count of channel draws is called `draws`. The old names still
# work (with a warning) on the command line, in `compose_config` and in a stored config.yaml.
# `ojrs-train-any`'s `general` group (before it became the `train` group's `any` preset).
GENERAL = {
    **{
        f"general.{k}": f"train.{k}"
        for k in (
            "epochs",
            "phi",
            "batch",
            "updates",
            "buffer",
            "learning_rate",
            "lam",
            "adaptive",
            "rounds",
            "chunk",
            "asa_moves",
            "init_from",
        )
    },
    "general.width": "train.link_width",
    "general.hidden": "train.score_hidden",
}
RENAMED: dict[str, dict[str, str]] = {
    "train": {
        "eval.channels": "eval.draws",
        "sae_pretrain.channels": "sae_pretrain.draws",
        **GENERAL,
    },
    "train_any": GENERAL,
    "baselines": {"epochs": "draws"},
    "sae_train": {"train_channels": "train_draws", "test_channels": "test_draws"},
    "reproduce": {
        "reproduce.eval_channels": "reproduce.eval_draws",
        "sae_pretrain.channels": "sae_pretrain.draws",
        "table2.channels": "table2.draws",
        "sae_study.train_channels": "sae_study.train_draws",
        "sae_study.test_channels": "sae_study.test_draws",
    },
}


def _warn_renamed(old: str, new: str) -> None:
    print(f"warning: setting {old!r} is now called {new!r}; the old name will go", file=sys.stderr)


def rename_overrides(overrides: list[str], config_name: str) -> list[str]:
    """Hydra overrides (`key=v`, `+key=v`, `++key=v`, `~key`) with renamed keys replaced."""
    renamed = RENAMED.get(config_name, {})
    out = []
    for o in overrides:
        prefix = o[: len(o) - len(o.lstrip("+~"))]
        key, eq, value = o[len(prefix) :].partition("=")
        if key in renamed:
            _warn_renamed(key, renamed[key])
            o = f"{prefix}{renamed[key]}{eq}{value}"
        out.append(o)
    return out


def rename_settings(c: dict, config_name: str) -> dict:
    """A resolved config dict (e.g. a stored config.yaml) with renamed keys moved to their new
    names (a copy; the new name wins if both are present)."""
    out = copy.deepcopy(c)
    for old, new in RENAMED.get(config_name, {}).items():
        *path_old, leaf_old = old.split(".")
        *path_new, leaf_new = new.split(".")
        parent = out
        for p in path_old:
            parent = parent.get(p) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or leaf_old not in parent:
            continue
        value = parent.pop(leaf_old)
        target = out
        for p in path_new:
            target = target.setdefault(p, {})
        target.setdefault(leaf_new, value)
    return out


def first_line(text: Any) -> str:
    """The first non-blank line of `str(text)` ("" if none): one line of an error message."""
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


# Hydra's launcher configs that come with a plugin, and the extra of this package installing it.
