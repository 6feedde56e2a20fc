"""Run directories: atomic checkpoints of the training state and the trained model (no equation).

A run directory holds
- `config.yaml`: the resolved configuration of the run;
- `scenario.json`: the deployment with the task weights in force at the end of training,
  `scenario_start.json`: the same with the weights at the start (they differ after the change);
- `checkpoint/state.msgpack` + `checkpoint/meta.json`: the whole `TrainState` after the last
  completed chunk, and the metrics so far (`checkpoint/metrics.npz`), for resuming;
- `model.msgpack`: what a trained scheduler needs to decide (policy and online encoder).
Files are flax msgpack (`flax.serialization`), NumPy npz and JSON, each written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from ojrs_jax.io import atomic_write_bytes, atomic_write_text, write_npz
from ojrs_jax.scenario import ConfigError


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
    """Write the training state and the metrics so far (each file atomically, meta last)."""
    ck = Path(run_dir) / "checkpoint"
    atomic_write_bytes(ck / "state.msgpack", serialization.to_bytes(_to_host(state)))
    write_npz(ck / "metrics.npz", **metrics)
    atomic_write_text(ck / "meta.json", json.dumps({"epoch": int(epoch)}))


def load_state(run_dir: Path, template: Any) -> tuple[Any, dict[str, np.ndarray], int] | None:
    """The saved (state, metrics, epoch), or None when the run has no checkpoint yet."""
    ck = Path(run_dir) / "checkpoint"
    if not (ck / "meta.json").exists():
        return None
    try:
        epoch = int(json.loads((ck / "meta.json").read_text())["epoch"])
        raw = serialization.from_bytes(_to_host(template), (ck / "state.msgpack").read_bytes())
        with np.load(ck / "metrics.npz") as z:
            metrics = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot resume from {ck}: {e}") from None
    return _from_host(template, raw), metrics, epoch


def save_model(run_dir: Path, model: dict[str, Any]) -> None:
    """Write the decision model (policy and online encoder parameters)."""
    atomic_write_bytes(Path(run_dir) / "model.msgpack", serialization.to_bytes(model))


def load_model(run_dir: Path, template: dict[str, Any]) -> dict[str, Any]:
    path = Path(run_dir) / "model.msgpack"
    try:
        return serialization.from_bytes(template, path.read_bytes())
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read trained model {str(path)!r}: {e}") from None
