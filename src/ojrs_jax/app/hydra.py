"""The Hydra app layer: strict `hydra.main`, one-line errors with exit codes (no equation).

`cli_guard` turns `ConfigError`, an interpolation that cannot resolve and an `OSError` (disk
full, permission denied) into one `error:` line and exit code 2. `hydra_cli` is `hydra.main` for
this package made strict: a setting the YAML files of `conf/` do not define, a value of the
wrong type for its default, or an override Hydra cannot apply (an unknown key, a missing group
option, a syntax error) also ends in one `error:` line and exit 2.

Hydra's record of a run (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`) is written by
`save_record` once the settings pass their check (the commands' configs set
`hydra.output_subdir: null`, so Hydra itself writes nothing): a refused start leaves the record
of a finished run in that directory as it was, and a start refused in a directory it created
leaves no directory behind.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ojrs_jax.core.io import atomic_write_text
from ojrs_jax.core.settings import ConfigError, first_line, rename_overrides

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONFIG_PATH = "pkg://ojrs_jax.conf"


def to_container(cfg: DictConfig | dict) -> dict:
    """Resolved plain dict of a config node (a Hydra `DictConfig`, or a mapping as it is): the
    library below this layer takes plain dicts only."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


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


def _defaults_for(config_name: str) -> dict:
    """The config of the running app composed with its group choices but no value overrides."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    choices = HydraConfig.get().runtime.choices
    overrides = [
        f"{g}={o}" for g, o in choices.items() if not g.startswith("hydra") and isinstance(o, str)
    ]
    return to_container(hydra.compose(config_name=config_name, overrides=overrides))


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


RECORD = ".hydra"  # Hydra's name for its record of a run (hydra.output_subdir)


def save_record(cfg: DictConfig, run_dir: Path, keep: bool = False) -> None:
    """Write Hydra's record of this run into `run_dir/.hydra`: the task's config, Hydra's own
    config and the command-line overrides, as Hydra writes them (`OmegaConf.to_yaml`). `keep`:
    leave a record already there as it is (a resumed run keeps the record of its start)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.instance().cfg
    assert hydra_cfg is not None  # only called from a task that Hydra runs
    d = Path(run_dir) / RECORD
    if keep and d.exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    for name, node in (
        ("config.yaml", cfg),
        ("hydra.yaml", hydra_cfg),
        ("overrides.yaml", hydra_cfg.hydra.overrides.task),
    ):
        atomic_write_text(d / name, OmegaConf.to_yaml(node))


def _discard_if_untouched(run_dir: Path) -> None:
    """Remove `run_dir`, which this process created, if the failed task left nothing in it but
    the record, the lock file and its log (the log file is opened at its first line:
    conf/hydra/job_logging/ojrs.yaml; the lines of a refused job say only what it set out to
    do)."""
    from ojrs_jax.run.rundir import LOCK

    try:
        left = [p for p in run_dir.iterdir() if p.name != RECORD]
        if not all(p.is_file() and (p.name == LOCK or p.suffix == ".log") for p in left):
            return
        for p in left:
            p.unlink()
        if (run_dir / RECORD).is_dir():
            shutil.rmtree(run_dir / RECORD)  # written by `save_record` alone
        run_dir.rmdir()  # fails, and keeps the directory, if anything appeared meanwhile
    except OSError:  # best effort: the error that stopped the task is the one to report
        pass


def hydra_cli(
    config_name: str, own_record: bool = False
) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """`hydra.main` on this package's `config_name`, with `cli_guard` and strict settings.

    Before the task runs, the composed config is checked against the YAML defaults
    (`check_settings`); an override Hydra itself rejects is reported by `hydra_error_line`.
    Both end in one `error:` line and exit code 2, as do the errors of `error_line` raised by
    the task; others (bugs) keep their traceback. Hydra's record (`save_record`) is written
    when the settings have passed, or by the task itself (`own_record`: once it has claimed its
    run directory). A run directory this start created is removed again if the task fails
    before writing anything into it.
    """
    import hydra

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        started = [False]
        since = [0.0]

        @functools.wraps(task)
        def checked(cfg: DictConfig) -> Any:
            from hydra.core.hydra_config import HydraConfig

            from ojrs_jax.core.cache import enable_compilation_cache

            started[0] = True
            if not HydraConfig.initialized():  # called with a config directly
                return task(cfg)
            out = Path(HydraConfig.get().runtime.output_dir)
            # Hydra made the directory in this process if it is empty and younger than `main`
            made = not any(out.iterdir()) and out.stat().st_ctime >= since[0]
            try:
                check_settings(to_container(cfg), _defaults_for(config_name))
                if not own_record:
                    save_record(cfg, out)
                enable_compilation_cache()
                return task(cfg)
            except Exception:  # Ctrl-C keeps what the job has done (its log included)
                if made:
                    _discard_if_untouched(out)
                raise

        app = hydra.main(config_path=CONFIG_PATH, config_name=config_name, version_base="1.3")(
            cli_guard(checked)
        )

        @functools.wraps(task)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is not None:
                return app(cfg_passthrough)
            started[0] = False
            # a file's time is the kernel's coarse clock, which never runs ahead of time.time():
            # a directory made before this line never looks younger than it
            since[0] = time.time()
            sys.argv[1:] = rename_overrides(sys.argv[1:], config_name)
            # Hydra prints its own multi-line report and exits 1 unless HYDRA_FULL_ERROR is set;
            # set, it raises, and the exception becomes our one line.
            previous = os.environ.get("HYDRA_FULL_ERROR")
            os.environ["HYDRA_FULL_ERROR"] = "1"
            try:
                return app()
            except KeyboardInterrupt:  # Ctrl-C before the task started (composing the config)
                print("error: interrupted", file=sys.stderr)
                sys.exit(INTERRUPTED)
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


INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT), as a shell reports it


def cli_guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report the errors of `error_line` as one line on stderr and exit with status 2 (no
    traceback), Ctrl-C as one line and status 130; other exceptions (bugs) keep their
    traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Hydra logs at INFO; JAX's backend probing ("Unable to initialize backend 'tpu'") is noise.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:  # the message says what was kept (run.loop)
            print(f"error: {first_line(e) or 'interrupted'}", file=sys.stderr)
            sys.exit(INTERRUPTED)
        except Exception as e:
            line = error_line(e)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            sys.exit(2)

    return wrapper
