"""Run directory files: atomic checkpoints of the training state, the trained model, config.yaml.

A run directory holds
- `config.yaml`: the resolved configuration of the run;
- `scenario.json`: the deployment with the task weights in force at the end of training,
  `scenario_start.json`: the same with the weights at the start (they differ after the change);
- `checkpoint/state.msgpack`: the whole `TrainState` after the last completed chunk together
  with the metrics so far and the epoch, in one file, for resuming; `checkpoint/meta.json`
  repeats the epoch for people and scripts watching the run;
- `model.msgpack`: what a trained scheduler needs to decide (policy and online encoder).
Files are flax msgpack (`flax.serialization`), NumPy npz and JSON, each written atomically. A
checkpoint is one file so that a kill at any instant leaves either the previous checkpoint or
the new one, never a state from one chunk beside metrics from another. Reading checks what it
reads: config.yaml must be a YAML mapping, a checkpoint's arrays must have the shapes and dtypes
of the run's state and its metrics one value per epoch done; anything else is a `ConfigError`
naming the file. `ojrs_jax.run.rundir` builds the run directory's loader and lock on these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml
from flax import serialization, traverse_util

from ojrs_jax.core.io import atomic_write_bytes, atomic_write_text
from ojrs_jax.core.settings import ConfigError, first_line, rename_settings


def _is_key(x: Any) -> bool:
    """A typed PRNG key, as an array or as the shape of one (`jax.eval_shape`)."""
    return isinstance(x, jax.Array | jax.ShapeDtypeStruct) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _to_host(tree: Any) -> Any:
    """Typed PRNG keys become their raw uint32 data so msgpack can store them. A template of
    shapes (`jax.eval_shape` of the initial state) gives the shapes of that data."""

    def host(x: Any) -> Any:
        if not _is_key(x):
            return x
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.eval_shape(jax.random.key_data, x)
        return jax.random.key_data(x)

    return jax.tree.map(host, tree)


def _from_host(template: Any, tree: Any) -> Any:
    def back(t, x):
        if _is_key(t):
            return jax.random.wrap_key_data(np.asarray(x, np.uint32))
        return x

    return jax.tree.map(back, template, tree)


def describe(x: Any) -> str:
    """What a value read from a file is, for a message: "a list", "an int", "nothing"."""
    if x is None:
        return "nothing (an empty document)"
    name = type(x).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def read_config(run_dir: Path) -> dict:
    """The run's config.yaml as a mapping; bad YAML, a tag safe_load refuses, an empty file or
    a document that is not a mapping raise `ConfigError` with one line naming the file."""
    path = Path(run_dir) / "config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        why = getattr(e, "problem", None) or first_line(e)
        raise ConfigError(f"cannot read {path}: not valid YAML: {why}{where}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must be a mapping of settings, got {describe(cfg)}")
    return cfg


def shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """(shape, dtype) of every leaf of a nested dict (or flax state dict), by its path."""
    flat = traverse_util.flatten_dict(serialization.to_state_dict(tree), sep="/")
    out = {}
    for k, v in flat.items():
        a = v if hasattr(v, "shape") and hasattr(v, "dtype") else np.asarray(v)
        out[k] = (tuple(a.shape), np.dtype(a.dtype).name)
    return out


def first_mismatch(got: Any, want: Any, dtypes: bool = True) -> str | None:
    """The first leaf (by path) where tree `got` differs from `want` in presence, shape or
    (with `dtypes`) dtype, as a phrase; None when they agree."""
    g, w = shapes(got), shapes(want)
    for k in sorted(g.keys() | w.keys()):
        if k not in g:
            return f"{k} is missing"
        if k not in w:
            return f"{k} is not a parameter of this configuration"
        (gs, gd), (ws, wd) = g[k], w[k]
        if gs != ws or (dtypes and gd != wd):
            return (
                f"{k} has shape {gs} {gd}, expected {ws} {wd}"
                if dtypes
                else (f"{k} has shape {gs}, expected {ws}")
            )
    return None


def save_state(run_dir: Path, state: Any, metrics: dict[str, np.ndarray], epoch: int) -> None:
    """Write the training state, the metrics so far and the epoch as one file (atomically)."""
    ck = Path(run_dir) / "checkpoint"
    blob = {
        "epoch": int(epoch),
        "state": serialization.to_state_dict(_to_host(state)),
        "metrics": {k: np.asarray(v) for k, v in metrics.items()},
    }
    atomic_write_bytes(ck / "state.msgpack", serialization.msgpack_serialize(blob))
    atomic_write_text(ck / "meta.json", json.dumps({"epoch": int(epoch)}))


def load_state(run_dir: Path, template: Any) -> tuple[Any, dict[str, np.ndarray], int] | None:
    """The saved (state, metrics, epoch), or None when the run has no checkpoint yet. The
    template is an initial state or its shapes (`jax.eval_shape`, which computes nothing)."""
    path = Path(run_dir) / "checkpoint" / "state.msgpack"
    # a process killed inside an atomic write leaves the temporary file behind
    for tmp in [*Path(run_dir).glob(".*.tmp"), *path.parent.glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return None
    blob = _read_checkpoint(path)
    host = _to_host(template)
    try:
        raw = serialization.from_state_dict(host, blob["state"])
        metrics = {k: np.asarray(v) for k, v in blob["metrics"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"cannot resume from {path}: {first_line(e)}") from None
    epoch, bad = blob["epoch"], first_mismatch(raw, host)
    if bad is not None:
        raise ConfigError(f"cannot resume from {path}: state {bad} (not this run's checkpoint)")
    at = getattr(raw, "epoch", None)  # a TrainState counts its epochs too
    if at is not None and int(np.asarray(at)) != epoch:
        raise ConfigError(f"cannot resume from {path}: its state and its epoch ({epoch}) differ")
    for k, v in metrics.items():
        if v.ndim != 1 or v.shape[0] != epoch or v.dtype.kind not in "iuf":
            raise ConfigError(
                f"cannot resume from {path}: metrics {k!r} have shape {v.shape}, expected one "
                f"number per epoch done ({epoch},)"
            )
    return _from_host(template, raw), metrics, epoch


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint's blob: a mapping with an integer epoch >= 0, a state and metrics."""
    try:
        blob = serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # msgpack raises its own exception types on a damaged file
        why = first_line(e) or type(e).__name__
        raise ConfigError(f"cannot resume from {path}: not a checkpoint ({why})") from None
    if not isinstance(blob, dict) or not {"epoch", "state", "metrics"} <= set(blob):
        raise ConfigError(f"cannot resume from {path}: not a checkpoint, got {describe(blob)}")
    e = blob["epoch"]
    if isinstance(e, bool) or not isinstance(e, int) or e < 0:
        raise ConfigError(f"cannot resume from {path}: epoch must be an integer >= 0, got {e!r}")
    if not isinstance(blob["metrics"], dict):
        raise ConfigError(f"cannot resume from {path}: metrics are {describe(blob['metrics'])}")
    return blob


def checkpoint_epoch(run_dir: Path) -> int | None:
    """The epoch of the run's checkpoint, or None when it has none (`ConfigError` if damaged)."""
    path = Path(run_dir) / "checkpoint" / "state.msgpack"
    return _read_checkpoint(path)["epoch"] if path.exists() else None


def check_resume_config(run_dir: Path, cfg: dict, ignore: tuple[str, ...]) -> None:
    """A run resumes only with the settings it started with (apart from `ignore`, top-level
    keys such as resume itself); raises `ConfigError` naming the first difference. A run with a
    checkpoint but no config.yaml is refused: its settings are unknown."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        if (Path(run_dir) / "checkpoint" / "state.msgpack").exists():
            raise ConfigError(
                f"cannot resume {run_dir}: it has a checkpoint but no config.yaml, so the "
                "settings the checkpoint was made with are unknown (restore config.yaml, or "
                "start afresh in another directory)"
            )
        return
    saved = rename_settings(read_config(run_dir), "train")  # a run from before a rename

    def flat(d: dict, where: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if not where and k in ignore:
                continue
            out.update(flat(v, f"{where}{k}.") if isinstance(v, dict) else {f"{where}{k}": v})
        return out

    old, new = flat(saved), flat(cfg)
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            raise ConfigError(
                f"cannot resume {run_dir}: {key} was {old.get(key)!r}, now {new.get(key)!r} "
                "(resume with the run's own settings)"
            )


def save_model(run_dir: Path, model: dict[str, Any]) -> None:
    """Write the decision model (policy and online encoder parameters)."""
    atomic_write_bytes(Path(run_dir) / "model.msgpack", serialization.to_bytes(model))
