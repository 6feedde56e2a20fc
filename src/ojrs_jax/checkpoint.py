"""Run directories: atomic checkpoints of the training state and the trained model (no equation).

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
the new one, never a state from one chunk beside metrics from another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml
from flax import serialization

from ojrs_jax.config import ConfigError, rename_settings
from ojrs_jax.io import atomic_write_bytes, atomic_write_text


def _to_host(tree: Any) -> Any:
    """Typed PRNG keys become their raw uint32 data so msgpack can store them."""

    def is_key(x: Any) -> bool:
        return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)

    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _from_host(template: Any, tree: Any) -> Any:
    def back(t, x):
        if isinstance(t, jax.Array) and jax.dtypes.issubdtype(t.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.asarray(x, np.uint32))
        return x

    return jax.tree.map(back, template, tree)


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
    """The saved (state, metrics, epoch), or None when the run has no checkpoint yet."""
    path = Path(run_dir) / "checkpoint" / "state.msgpack"
    # a process killed inside an atomic write leaves the temporary file behind
    for tmp in [*Path(run_dir).glob(".*.tmp"), *path.parent.glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return None
    try:
        blob = serialization.msgpack_restore(path.read_bytes())
        epoch = int(blob["epoch"])
        raw = serialization.from_state_dict(_to_host(template), blob["state"])
        metrics = {k: np.asarray(v) for k, v in blob["metrics"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"cannot resume from {path}: {e}") from None
    return _from_host(template, raw), metrics, epoch


def check_resume_config(run_dir: Path, cfg: dict, ignore: tuple[str, ...]) -> None:
    """A run resumes only with the settings it started with (apart from `ignore`, top-level
    keys such as resume itself); raises `ConfigError` naming the first difference."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return
    try:
        saved = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if isinstance(saved, dict):  # a run started before a setting was renamed
        saved = rename_settings(saved, "train")

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


def load_model(run_dir: Path, template: dict[str, Any]) -> dict[str, Any]:
    path = Path(run_dir) / "model.msgpack"
    try:
        return serialization.from_bytes(template, path.read_bytes())
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read trained model {str(path)!r}: {e}") from None
