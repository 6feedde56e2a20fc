"""One run of `ojrs-train-any`: a feature policy trained over a deployment distribution (Alg. 3).

Writes to `run_dir`: any_model.msgpack after every chunk (a run stopped early leaves a usable
scheduler for `ojrs-decide --deployment` and `ojrs_jax.run.any_scheduler.load_any_run`),
metrics.csv (one row per epoch), summary.json, and with `tensorboard=true` the per-epoch
metrics for TensorBoard (`ojrs_jax.run.tracking`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import jax
import numpy as np

from ojrs_jax.agent.general import AnyTrainConfig, make_any_trainer
from ojrs_jax.core.io import atomic_write_text, write_csv
from ojrs_jax.core.progress import bar, log_summary
from ojrs_jax.core.settings import seed_value
from ojrs_jax.run.any_scheduler import save_any_run
from ojrs_jax.run.rundir import writing
from ojrs_jax.run.tracking import open_writer, tensorboard_setting
from ojrs_jax.system.deployment import DeploymentConfig, make_sampler
from ojrs_jax.system.scenario import system_config

log = logging.getLogger(__name__)


def train_any_run(c: dict, run_dir: Path, progress: bool = False) -> dict:
    """Train per the plain config `c` into `run_dir`; returns the summary (`progress` forces
    the bar). The run directory's lock (`rundir.writing`) is held for the whole job."""
    sys_cfg = system_config(c)
    dcfg = DeploymentConfig.from_mapping(dict(c.get("deployment") or {}))
    gcfg = AnyTrainConfig.from_mapping(dict(c.get("general") or {}), c.get("asa"), c.get("replay"))
    seed = seed_value(c)
    tensorboard = tensorboard_setting(c.get("tensorboard", False))
    with writing(Path(run_dir)):
        return _train_any(c, Path(run_dir), progress, sys_cfg, dcfg, gcfg, seed, tensorboard)


def _train_any(c, run_dir, progress, sys_cfg, dcfg, gcfg, seed, tensorboard) -> dict:
    """The job of `train_any_run`, under the run directory's lock."""
    trainer = make_any_trainer(gcfg, make_sampler(dcfg, sys_cfg))
    # training keys are key(seed) split; evaluations use fold_in(key(10_000 + seed), ...)
    state = trainer.init(jax.random.key(seed))
    total, chunk = gcfg.n_blocks * gcfg.phi, gcfg.chunk_blocks * gcfg.phi
    log.info("ojrs-train-any: %s deployments, %d epochs in chunks of %d", dcfg.kind, total, chunk)
    metrics: dict[str, list] = {}
    t0, compile_s = time.perf_counter(), None
    writer = open_writer(tensorboard, run_dir)
    try:
        with bar(total=total, unit="epoch", desc="training", force=progress) as pbar:
            while int(state.epoch) < total:
                tc, first = time.perf_counter(), int(state.epoch)
                state, m = trainer.run_chunk(state)
                jax.block_until_ready(state)
                compile_s = compile_s if compile_s is not None else time.perf_counter() - tc
                for k, v in m.items():
                    metrics.setdefault(k, []).append(np.asarray(v))
                if writer is not None:
                    writer.write({k: np.asarray(v) for k, v in m.items()}, first)
                # the model after every chunk: a run stopped early leaves a usable scheduler
                save_any_run(run_dir, c, state.policy)
                ratio = float(np.mean(m["ratio"][-100:]))
                log.info(
                    "epoch %d/%d: %.0f s, policy/ASA ratio %.4f",
                    int(state.epoch),
                    total,
                    time.perf_counter() - t0,
                    ratio,
                )
                pbar.update(chunk)
                pbar.set_postfix(ratio=f"{ratio:.4f}")
    finally:
        if writer is not None:
            writer.close()
    train_s = time.perf_counter() - t0
    flat = {k: np.concatenate(v) for k, v in metrics.items()}
    save_any_run(run_dir, c, state.policy)
    cols = list(flat)
    write_csv(
        run_dir / "metrics.csv",
        ["epoch", *cols],
        ([e, *(flat[k][e].item() for k in cols)] for e in range(total)),
    )
    last = slice(max(0, total - 500), total)
    summary = {
        "epochs": total,
        "train_seconds": train_s,
        "first_chunk_seconds_with_compile": compile_s,
        "ratio_last500": float(np.mean(flat["ratio"][last])),
        "loss_last": float(flat["loss"][-1]),
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    log_summary(log, "summary", summary)
    return summary
