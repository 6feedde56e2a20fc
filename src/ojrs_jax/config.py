"""Settings: `ConfigError`, the shared validators and typed views of the Hydra config (no equation).

The bottom layer of the package: every module that validates a setting raises `ConfigError`
from here, with one line naming the field and the value. Entry points turn the Hydra config into
typed, frozen dataclasses once at start-up; jitted code never sees a `DictConfig`.
`cli_guard` turns `ConfigError`, an interpolation that cannot resolve and an `OSError` (disk
full, permission denied) into one `error:` line and exit code 2. `hydra_cli` is
`hydra.main` for this package made strict: a setting the YAML files of `conf/` do not define, a
value of the wrong type for its default, or an override Hydra cannot apply (an unknown key, a
missing group option, a syntax error) also ends in one `error:` line and exit 2.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ojrs_jax.scenario import SystemConfig

CONFIG_PATH = "pkg://ojrs_jax.conf"


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


def to_container(cfg: DictConfig | dict) -> dict:
    """Resolved plain dict of a config node."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def system_config(cfg: DictConfig | dict) -> SystemConfig:
    """Merge the `scale` and `system` groups into one validated `SystemConfig`."""
    from ojrs_jax.scenario import SystemConfig

    c = to_container(cfg)
    merged = {**c.get("system", {}), **c.get("scale", {})}
    return SystemConfig.from_mapping(merged)


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


# Settings whose YAML default is a list but which also take a string (train.hidden: "auto").
LIST_OR_STRING = frozenset({"train.hidden"})


def check_settings(c: dict, defaults: dict, where: str = "") -> None:
    """Every key of `c` must exist in `defaults` (the same config composed from the YAML files
    alone) and hold a value of its default's type: bool, int, number (int or float), string,
    list or group. Ranges are left to the typed configs; a null default accepts anything."""
    for key, v in c.items():
        name = f"{where}{key}"
        if key not in defaults:
            raise ConfigError(f"unknown setting {name!r}")
        d = defaults[key]
        if isinstance(d, dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{name} is a group of settings, got {v!r}")
            check_settings(v, d, f"{name}.")
            continue
        if isinstance(d, bool):
            ok, want = isinstance(v, bool), "true or false"
        elif isinstance(d, int):
            ok, want = isinstance(v, int) and not isinstance(v, bool), "an integer"
        elif isinstance(d, float):
            ok, want = isinstance(v, int | float) and not isinstance(v, bool), "a number"
        elif isinstance(d, str):
            ok, want = isinstance(v, str), "a string"
        elif isinstance(d, list):
            ok, want = isinstance(v, list), "a list"
            if name in LIST_OR_STRING:
                ok, want = isinstance(v, list | str), "a list or a string"
        else:
            ok, want = True, ""
        if not ok:
            raise ConfigError(f"{name} must be {want}, got {v!r}")


# Settings renamed so that every count of channel draws is called `draws`. The old names still
# work (with a warning) on the command line, in `compose_config` and in a stored config.yaml.
RENAMED: dict[str, dict[str, str]] = {
    "train": {"eval.channels": "eval.draws", "sae_pretrain.channels": "sae_pretrain.draws"},
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


def _defaults_for(config_name: str) -> dict:
    """The config of the running app composed with its group choices but no value overrides."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    choices = HydraConfig.get().runtime.choices
    overrides = [
        f"{g}={o}" for g, o in choices.items() if not g.startswith("hydra") and isinstance(o, str)
    ]
    return to_container(hydra.compose(config_name=config_name, overrides=overrides))


def first_line(text: Any) -> str:
    """The first non-blank line of `str(text)` ("" if none): one line of an error message."""
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


# Hydra's launcher configs that come with a plugin, and the extra of this package installing it.
LAUNCHER_EXTRAS = {
    "joblib": "joblib",
    "submitit_local": "submitit",
    "submitit_slurm": "slurm",
    "ray": "ray",
    "ray_aws": "ray",
}


def _launcher_hint(missing: str) -> str:
    """`pip install "ojrs-jax[extra]"` when `missing` (group/option) is a launcher plugin's
    config, else ""."""
    group, _, option = missing.rpartition("/")
    extra = LAUNCHER_EXTRAS.get(option) if group == "hydra/launcher" else None
    return "" if extra is None else f'pip install "ojrs-jax[{extra}]"'


def hydra_error_line(e: BaseException) -> str:
    """One line for an exception Hydra raised while composing the config from the overrides."""
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = e.__cause__
    if getattr(cause, "full_key", None) and "not in" in str(cause):
        key = cause.full_key  # type: ignore[union-attr]
        plus = next((w for w in str(e).split() if w.startswith(f"+{key}=")), None)
        # Hydra's own config (hydra.*) is not checked by `check_settings`: there `+key` works
        hint = f" (to add it, use {plus})" if plus and key.startswith("hydra.") else ""
        return f"unknown setting {key!r}{hint}"
    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, option = e.missing_cfg_file.rpartition("/")
        hint = _launcher_hint(e.missing_cfg_file)
        if hint:  # the plugin's own config (or a preset of conf/hydra/launcher built on it)
            return f"launcher {option!r} needs its Hydra plugin, which is not installed: {hint}"
        if e.options:
            return (
                f"no option {option!r} in config group {group!r} "
                f"(available: {', '.join(e.options)})"
            )
    if isinstance(e, OverrideParseException):
        return f"cannot parse override {e.override!r}: {first_line(e.message)}"
    line = first_line(e) or type(e).__name__
    return f"{line} {first_line(cause)}" if cause is not None else line


def hydra_cli(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """`hydra.main` on this package's `config_name`, with `cli_guard` and strict settings.

    Before the task runs, the composed config is checked against the YAML defaults
    (`check_settings`); an override Hydra itself rejects is reported by `hydra_error_line`.
    Both end in one `error:` line and exit code 2, as do the errors of `error_line` raised by
    the task; others (bugs) keep their traceback.
    """
    import hydra

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        started = [False]

        @functools.wraps(task)
        def checked(cfg: DictConfig) -> Any:
            from hydra.core.hydra_config import HydraConfig

            from ojrs_jax.cache import enable_compilation_cache

            started[0] = True
            if HydraConfig.initialized():  # not when called with a config directly
                check_settings(to_container(cfg), _defaults_for(config_name))
                enable_compilation_cache()
            return task(cfg)

        app = hydra.main(config_path=CONFIG_PATH, config_name=config_name, version_base="1.3")(
            cli_guard(checked)
        )

        @functools.wraps(task)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is not None:
                return app(cfg_passthrough)
            started[0] = False
            sys.argv[1:] = rename_overrides(sys.argv[1:], config_name)
            # Hydra prints its own multi-line report and exits 1 unless HYDRA_FULL_ERROR is set;
            # set, it raises, and the exception becomes our one line.
            previous = os.environ.get("HYDRA_FULL_ERROR")
            os.environ["HYDRA_FULL_ERROR"] = "1"
            try:
                return app()
            except Exception as e:
                if started[0]:
                    raise
                print(f"error: {hydra_error_line(e)}", file=sys.stderr)
                sys.exit(2)
            finally:
                if previous is None:
                    os.environ.pop("HYDRA_FULL_ERROR", None)
                else:
                    os.environ["HYDRA_FULL_ERROR"] = previous

        return main

    return decorate


def error_line(e: BaseException) -> str | None:
    """The one line for an error a command reports without a traceback, or None for a bug:
    `ConfigError`, an `OSError` (unreadable or unwritable file, disk full) and an OmegaConf
    interpolation that cannot resolve (`seed='${oc.env:NOPE}'`)."""
    from omegaconf.errors import InterpolationResolutionError

    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, OSError):  # "[Errno 28] ..." without the number; the file when known
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}" if e.strerror else first_line(e) or type(e).__name__
    if isinstance(e, InterpolationResolutionError):
        why = re.sub(r"^\w+ raised while resolving interpolation: ", "", first_line(e.msg))
        return f"cannot resolve the interpolation of {e.full_key}: {why.strip(chr(34))}"
    return None


def cli_guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report the errors of `error_line` as one line on stderr and exit with status 2 (no
    traceback); other exceptions (bugs) keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Hydra logs at INFO; JAX's backend probing ("Unable to initialize backend 'tpu'") is noise.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            line = error_line(e)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            sys.exit(2)

    return wrapper
