"""The run directory of `ojrs-train`: one validated loader of a trained run, and its lock.

`load_trained(run_dir)` reads config.yaml, model.msgpack and, for a run on the fixed deployment,
scenario.json, and checks that they agree before anything is computed: config.yaml is a mapping
whose groups build the typed configs; scenario.json is a well-formed deployment whose N, M equal
the config's `scale`; every parameter of model.msgpack has the shape the configuration's policy
and encoder give at that N, M (the feature policy's do not depend on N, M). It reads the runs of
every version of the package: an `ojrs-train-any` run from before the two trainers became one
(config.yaml with a `general` group, the policy in any_model.msgpack) loads as the same run of
`train=any`. `ojrs-decide`, `scheduler.load_run` and hence `ojrs_jax.load_run` use it; resuming
checks the checkpoint the same way (`checkpoint.load_state`, `resume_point`). Each fault is a
`ConfigError` naming the file.

A process writing a run directory holds `writing(run_dir)`, an exclusive `fcntl.flock` on
`run_dir/.lock`, for its whole job: a second writer is refused naming the directory and the
holder's PID. A reader holds `reading(run_dir)`, a shared lock, while it reads the files, so it
never reads a directory a writer is changing (it is refused instead); the lock is released when
the process ends, however it ends. A run directory without `.lock` was never written under
the lock (a copy, an older run): it is read without one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.policy import init_policy
from ojrs_jax.core.settings import GENERAL, ConfigError, first_line
from ojrs_jax.run.checkpoint import (
    check_resume_config,
    checkpoint_epoch,
    describe,
    first_mismatch,
    read_config,
)
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.system.deployment import DeploymentConfig, from_scenario
from ojrs_jax.system.scenario import (
    Scenario,
    SystemConfig,
    load_scenario,
    make_scenario,
    system_config,
)

LOCK = ".lock"
MODEL = "model.msgpack"
LEGACY_MODEL = "any_model.msgpack"  # the policy of an `ojrs-train-any` run of before


def _holder(fd: int) -> str:
    """ " (pid N)" when the lock file names a live process, else "" (PIDs are a courtesy)."""
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
        os.kill(pid, 0)
    except (ValueError, OSError):
        return ""
    return f" (pid {pid})"


def _busy(fd: int, mode: int) -> str | None:
    """Take `flock` `mode` on `fd` without waiting: None when taken; when another process holds
    it, the " (pid N)" of `_holder` ("" when unknown) for the caller's message."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    return None


@contextlib.contextmanager
def writing(run_dir: Path) -> Iterator[Path]:
    """Hold `run_dir`'s lock while this process writes it (created if need be); another writer
    or a reader holding it gives `ConfigError` naming the directory and, when known, the PID."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise OSError(e.errno, f"cannot lock {run_dir}: {e.strerror}") from None
    try:
        if (pid := _busy(fd, fcntl.LOCK_EX)) is not None:
            raise ConfigError(
                f"run directory {run_dir} is in use by another process{pid}; wait for it to "
                "finish, or use another directory"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield run_dir
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def reading(run_dir: Path) -> Iterator[Path]:
    """Hold `run_dir`'s lock shared while reading it; a writer holding it gives `ConfigError`."""
    run_dir = Path(run_dir)
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:  # no lock file: never written under the lock (or not readable)
        yield run_dir
        return
    try:
        if (pid := _busy(fd, fcntl.LOCK_SH)) is not None:
            raise ConfigError(
                f"run directory {run_dir} is being written by another process{pid}; its files "
                "may not belong together yet (read it when that process has ended)"
            )
        yield run_dir
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TrainedRun:
    """The validated contents of a finished run directory."""

    path: Path
    cfg: dict  # config.yaml (an older run's converted to today's settings)
    train_cfg: TrainConfig
    sae_cfg: sae_mod.SAEConfig
    sys_cfg: SystemConfig  # the physical constants (and the `scale` of a fixed deployment)
    deployment: DeploymentConfig  # the task it was trained on
    scn: Scenario | None  # scenario.json: the fixed deployment with its final weights, or None
    policy: Any  # model.msgpack: policy parameters
    encoder: Any  # model.msgpack: online encoder parameters ({} when the policy reads no code)

    @property
    def any_deployment(self) -> bool:
        """The policy decides for any deployment (the feature policy)."""
        return self.train_cfg.any_deployment


def _group(cfg: dict, name: str) -> dict:
    g = cfg.get(name) or {}
    if not isinstance(g, dict):
        raise ConfigError(f"{name} must be a group of settings, got {describe(g)}")
    return g


def from_train_any(cfg: dict) -> dict:
    """The config.yaml of an `ojrs-train-any` run of before (a `general` group) as today's:
    its settings in the `train` group of the `any` preset (`core.settings.GENERAL`)."""
    out = {k: v for k, v in cfg.items() if k != "general"}
    train = {"arch": "feature", "state": "deployment", "change_epoch": 0, "incremental_sae": False}
    for key, value in _group(cfg, "general").items():
        new = GENERAL.get(f"general.{key}")
        if new is None:
            raise ConfigError(f"general.{key} is not a setting of an ojrs-train-any run")
        train[new.split(".", 1)[1]] = value
    return {**out, "train": train}


def typed_configs(cfg: dict, path: Path) -> tuple[TrainConfig, sae_mod.SAEConfig]:
    """The run's `TrainConfig` and `SAEConfig` from its config.yaml mapping (read from `path`)."""
    try:
        train_cfg = TrainConfig.from_mapping(
            _group(cfg, "train"), _group(cfg, "asa"), _group(cfg, "replay")
        )
        sae_cfg = sae_mod.SAEConfig.from_mapping(_group(cfg, "sae"))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:  # a value no validator expected
        raise ConfigError(f"{path}: {first_line(e) or type(e).__name__}") from None
    return train_cfg, sae_cfg


def model_template(
    n_ue: int, n_mec: int, train_cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig
) -> dict[str, Any]:
    """Shapes and dtypes (`jax.ShapeDtypeStruct`) of model.msgpack for this configuration (the
    feature policy's parameters are the same for every N, M)."""
    net = train_cfg.policy_net(n_ue, n_mec, sae_cfg)

    def init() -> dict[str, Any]:
        key = jax.random.key(0)
        if train_cfg.any_deployment:
            dep = from_scenario(make_scenario(SystemConfig(n_ue=2, n_mec=1)))
            return {"policy": fp.init_params(key, net, dep, dep.gain), "encoder": {}}
        width = sae_cfg.state_width(n_ue) if train_cfg.state == "sae" else n_ue * n_mec
        return {
            "policy": init_policy(key, net, width, train_cfg.local_bias),
            "encoder": sae_mod.init_sae(key, sae_cfg, n_ue * n_mec, n_mec),
        }

    return jax.eval_shape(init)


def read_model(
    path: Path, n_ue: int, n_mec: int, train_cfg: TrainConfig, sae_cfg: sae_mod.SAEConfig
) -> dict[str, Any]:
    """model.msgpack, checked against the parameters this configuration has at N, M (an older
    any_model.msgpack holds the policy alone)."""
    try:
        model = serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # msgpack raises its own exception types on a damaged file
        why = (
            e.strerror
            if isinstance(e, OSError)
            else (f"not a msgpack file ({first_line(e) or type(e).__name__})")
        )
        raise ConfigError(f"cannot read trained model {path}: {why}") from None
    if path.name == LEGACY_MODEL and isinstance(model, dict):
        model = {"policy": model, "encoder": {}}
    if not isinstance(model, dict) or set(model) != {"policy", "encoder"}:
        raise ConfigError(
            f"{path} is not a trained model (expected policy and encoder parameters, got "
            f"{describe(model) if not isinstance(model, dict) else sorted(model)})"
        )
    if not _finite(model):
        raise ConfigError(
            f"{path} has NaN or infinite parameters (a diverged run?): it cannot decide"
        )
    want = model_template(n_ue, n_mec, train_cfg, sae_cfg)
    for part in ("policy", "encoder"):
        if part == "encoder" and train_cfg.any_deployment:
            continue  # the feature policy has no encoder
        bad = first_mismatch({part: model[part]}, {part: want[part]}, dtypes=False)
        if bad is not None:
            where = "any N, M" if train_cfg.any_deployment else f"N = {n_ue}, M = {n_mec}"
            raise ConfigError(
                f"{path} does not fit the run's {where} and train.arch={train_cfg.arch}, "
                f"train.state={train_cfg.state} (config.yaml): parameter {bad}"
            )
    return model


def read_policy(run_dir: str | Path) -> Any:
    """The policy parameters of a finished run (model.msgpack, or an older run's
    any_model.msgpack) under its read lock, checked to be finite: what `train.init_from` starts
    a run with (`run.build` checks their shapes against the new run's policy)."""
    run_dir = Path(run_dir)
    files = [run_dir / MODEL, run_dir / LEGACY_MODEL]
    path = next((f for f in files if f.is_file()), None)
    if path is None:
        raise ConfigError(f"train.init_from: {run_dir} holds no trained model ({MODEL})")
    with reading(run_dir):
        try:
            model = serialization.msgpack_restore(path.read_bytes())
        except Exception as e:  # msgpack raises its own exception types on a damaged file
            raise ConfigError(f"train.init_from: cannot read {path}: {first_line(e)}") from None
    policy = model if path.name == LEGACY_MODEL else (model or {}).get("policy")
    if not isinstance(policy, dict) or not _finite(policy):
        raise ConfigError(f"train.init_from: {path} holds no finite policy parameters")
    return policy


def _finite(tree: Any) -> bool:
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
    return all(np.all(np.isfinite(x)) for x in leaves if np.issubdtype(x.dtype, np.floating))


def load_trained(run_dir: str | Path) -> TrainedRun:
    """Read and cross-check a finished run directory under its read lock; `ConfigError` (one
    line naming the file) when a file is missing, malformed or belongs to another run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist")
    with reading(run_dir):
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir} is not a finished ojrs-train run (missing config.yaml)")
        cfg = read_config(run_dir)
        model_file = MODEL
        if "general" in cfg and "train" not in cfg:  # an ojrs-train-any run of before
            cfg, model_file = from_train_any(cfg), LEGACY_MODEL
        train_cfg, sae_cfg = typed_configs(cfg, run_dir / "config.yaml")
        try:
            sys_cfg = system_config({g: _group(cfg, g) for g in ("scale", "system")})
            dcfg = DeploymentConfig.from_mapping(dict(_group(cfg, "deployment") or {}))
        except ConfigError as e:
            raise ConfigError(f"{run_dir / 'config.yaml'}: {e}") from None
        fixed = dcfg.kind == "fixed" and model_file == MODEL
        need = [model_file, *(["scenario.json"] if fixed else [])]
        missing = [f for f in need if not (run_dir / f).is_file()]
        if missing:
            raise ConfigError(
                f"{run_dir} is not a finished ojrs-train run (missing {', '.join(missing)})"
            )
        scn = None
        n_ue, n_mec = dcfg.n_max, dcfg.m_max
        if fixed:
            scn = load_scenario(run_dir / "scenario.json")
            n_ue, n_mec = scn.n_ue, scn.n_mec
            if "scale" in cfg and (sys_cfg.n_ue, sys_cfg.n_mec) != (scn.n_ue, scn.n_mec):
                raise ConfigError(
                    f"{run_dir / 'scenario.json'} has N, M = {(scn.n_ue, scn.n_mec)}, but "
                    f"config.yaml has scale.n_ue, scale.n_mec = {(sys_cfg.n_ue, sys_cfg.n_mec)}: "
                    "the files come from different runs"
                )
        model = read_model(run_dir / model_file, n_ue, n_mec, train_cfg, sae_cfg)
    return TrainedRun(
        run_dir, cfg, train_cfg, sae_cfg, sys_cfg, dcfg, scn, model["policy"], model["encoder"]
    )


def resume_point(run_dir: Path, cfg: dict, ignore: tuple[str, ...]) -> int | None:
    """For `resume=true`: the epoch of the run's checkpoint (None: no checkpoint, start afresh),
    after checking that config.yaml exists beside it and holds `cfg` (apart from `ignore`)."""
    check_resume_config(run_dir, cfg, ignore)
    return checkpoint_epoch(run_dir)
