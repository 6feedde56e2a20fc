"""The host loop of Algorithm 3: jitted chunks of epochs, with the host's work in between.

`run_chunks` is the one Python loop over `Trainer.run_chunk` (each call a jitted `lax.scan` over
blocks of phi epochs): after each chunk it stops on a non-finite loss, reward or parameter,
collects the per-epoch metrics, writes the checkpoint, calls the caller's `after_chunk` (the
reproduce jobs measure NRR there) and moves the progress bar. `train_seeds` runs it for many
seeds at once (vmap), their axis sharded over a `jax.sharding.Mesh` of the available devices.
Used by `ojrs-train` (`ojrs_jax.run.train`) and the jobs of `ojrs-reproduce`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ojrs_jax.agent.trainer import Trainer, TrainState
from ojrs_jax.core.progress import bar
from ojrs_jax.run.checkpoint import save_state

if TYPE_CHECKING:
    from ojrs_jax.run.tracking import TensorBoardWriter

log = logging.getLogger(__name__)


@dataclass
class LoopResult:
    """What `run_chunks` returns: the final state and what was measured on the way."""

    state: TrainState
    metrics: dict[str, np.ndarray]  # per epoch, (epochs,) or (S, epochs) for a seed axis
    seconds: float  # wall time of the chunks, compile included
    first_chunk_seconds: float | None  # first chunk run here, compile included (None: none ran)


def _finite(tree: Any) -> bool:
    return all(
        bool(np.all(np.isfinite(np.asarray(x))))
        for x in jax.tree.leaves(tree)
        if np.issubdtype(np.asarray(x).dtype, np.floating)
    )


def interrupted(epoch: int, saved: int | None, checkpoint_dir: Path | None) -> str:
    """What Ctrl-C leaves behind, in one line."""
    if checkpoint_dir is None:
        return f"interrupted at epoch {epoch}"
    if saved is None:
        return f"interrupted at epoch {epoch}, before the first checkpoint: nothing to resume"
    return (
        f"interrupted at epoch {epoch}; the checkpoint of epoch {saved} is kept in "
        f"{checkpoint_dir / 'checkpoint'} (resume=true continues from it)"
    )


def run_chunks(
    run_chunk: Callable[[TrainState, Any], tuple[TrainState, dict]],
    state: TrainState,
    env: Any,
    total: int,
    chunk: int,
    *,
    metrics: dict[str, np.ndarray] | None = None,
    checkpoint_dir: Path | None = None,
    after_chunk: Callable[[TrainState, int], None] | None = None,
    progress: bool = False,
    writer: TensorBoardWriter | None = None,
) -> LoopResult:
    """Run `run_chunk` (chunks of `chunk` epochs) from `state` until `total` epochs are done.

    With a leading seed axis (vmapped states) every seed advances together; the epoch counter
    is seed 0's. `metrics` holds what a resumed run measured before; `writer` gets each chunk's
    metrics (TensorBoard, `ojrs_jax.run.tracking`). A non-finite loss, reward
    or parameter raises `FloatingPointError` naming the epoch (the loss is per block: without a
    bad loss the chunk's last epoch is blamed) and what was kept in `checkpoint_dir`.
    """
    seeds = np.ndim(state.epoch) > 0
    axis = 1 if seeds else 0

    def epoch_of(s: TrainState) -> int:
        return int(s.epoch[0]) if seeds else int(s.epoch)

    collected = {k: [v] for k, v in (metrics or {}).items()}
    t0 = time.perf_counter()
    first = None
    start = epoch_of(state)
    log.info("training: epochs %d to %d in chunks of %d", start, total, chunk)
    saved = start if start > 0 and checkpoint_dir is not None else None
    with bar(total=total, initial=start, unit="epoch", desc="training", force=progress) as pbar:
        try:
            while epoch_of(state) < total:
                tc = time.perf_counter()
                new_state, m = run_chunk(state, env)
                jax.block_until_ready(new_state)
                if first is None:
                    first = time.perf_counter() - tc
                m = jax.tree.map(np.asarray, m)
                bad_loss, bad_reward = ~np.isfinite(m["loss"]), ~np.isfinite(m["reward"])
                if seeds:
                    bad_loss, bad_reward = bad_loss.any(axis=0), bad_reward.any(axis=0)
                finite = _finite((new_state.policy, new_state.sae, new_state.average))
                if bad_loss.any() or bad_reward.any() or not finite:
                    done = epoch_of(state)
                    bad = done + int(
                        np.argmax(bad_loss)
                        if bad_loss.any()
                        else np.argmax(bad_reward)
                        if bad_reward.any()
                        else chunk - 1
                    )
                    msg = f"non-finite loss or parameters at epoch {bad}"
                    if checkpoint_dir is not None:
                        kept = (
                            f"the last good checkpoint (epoch {done}) is kept in "
                            f"{checkpoint_dir / 'checkpoint'}"
                            if done > 0
                            else "no checkpoint was written (the first chunk failed)"
                        )
                        msg = f"{msg}; {kept}"
                    raise FloatingPointError(msg)
                if writer is not None:
                    writer.write(m, epoch_of(state))
                state = new_state
                done = epoch_of(state)
                for k, v in m.items():
                    collected.setdefault(k, []).append(v)
                if checkpoint_dir is not None:
                    flat = {k: np.concatenate(v, axis=axis) for k, v in collected.items()}
                    save_state(checkpoint_dir, state, flat, done)
                    saved = done
                if after_chunk is not None:
                    after_chunk(state, done)
                pbar.update(chunk)
                reward = float(np.mean(m["reward"][..., -100:]))
                pbar.set_postfix(reward=f"{reward:.4f}", t_sa=int(np.max(m["t_sa"])))
                log.info("epoch %d/%d: reward %.4f (last 100 epochs)", done, total, reward)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(interrupted(epoch_of(state), saved, checkpoint_dir)) from None

    seconds = time.perf_counter() - t0
    log.info(
        "training: %d epochs in %.1f s (first chunk with compile %.1f s)",
        epoch_of(state) - start,
        seconds,
        first or 0.0,
    )
    flat = {k: np.concatenate(v, axis=axis)[..., :total] for k, v in collected.items()}
    return LoopResult(state, flat, seconds, first)


# --- many seeds in one computation, sharded over devices --------------------------------------


def seed_mesh(n_seeds: int, devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh ("seed",) over the most devices that divide the seed count evenly."""
    devs = list(jax.devices() if devices is None else devices)
    d = max(k for k in range(1, len(devs) + 1) if n_seeds % k == 0)
    return Mesh(np.array(devs[:d]), ("seed",))


def seed_keys(key: jax.Array, n_seeds: int) -> jax.Array:
    """Seed s trains from fold_in(key, s): adding seeds never changes the earlier ones."""
    return jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(n_seeds))


@dataclass
class SeedRun:
    """Outcome of `train_seeds`: final states (leading seed axis) and what was measured."""

    state: TrainState
    metrics: dict[str, np.ndarray]  # per epoch, (S, epochs)
    evals: list[dict[str, Any]]  # one dict per evaluation point: epoch and (S,) arrays
    seconds: float  # wall time of the training chunks, compile included
    first_chunk_seconds: float  # first chunk, compile included
    devices: int  # devices the seed axis was sharded over


def train_seeds(
    trainer: Trainer,
    key: jax.Array,
    n_seeds: int,
    sae_params: Any,
    env: Any,
    measure: Callable[[TrainState, int], dict[str, Any]] | None = None,
    shard: bool = True,
    progress: bool = False,
    writer: TensorBoardWriter | None = None,
) -> SeedRun:
    """Algorithm 3 for `n_seeds` seeds at once (vmap), their axis sharded over the devices.

    After each chunk of `trainer.cfg.chunk` epochs, `measure(states, epochs_done)` may measure
    the policies (its (S,) arrays are collected). The SAE parameters and the environment are
    shared by all seeds; seeds differ in policy init, channels and searches.
    """
    state = jax.vmap(trainer.init, (0, None, None))(seed_keys(key, n_seeds), sae_params, env)
    mesh = seed_mesh(n_seeds) if shard else None
    log.info(
        "%d seeds in one computation on %d device(s)", n_seeds, 1 if mesh is None else mesh.size
    )
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, PartitionSpec("seed")))
        env = jax.device_put(env, NamedSharding(mesh, PartitionSpec()))
    evals: list[dict[str, Any]] = []

    def after_chunk(st: TrainState, done: int) -> None:
        if measure is not None:
            evals.append({"epoch": done, **measure(st, done)})

    cfg = trainer.cfg
    res = run_chunks(
        jax.jit(jax.vmap(trainer.run_chunk, (0, None))),
        state,
        env,
        cfg.n_blocks * cfg.phi,
        cfg.chunk_blocks * cfg.phi,
        after_chunk=after_chunk,
        progress=progress,
        writer=writer,
    )
    devices = 1 if mesh is None else mesh.size
    return SeedRun(
        res.state, res.metrics, evals, res.seconds, res.first_chunk_seconds or 0.0, devices
    )
