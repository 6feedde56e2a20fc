"""One training run of `ojrs-train`: pretrain the 2r-SAE, run Algorithm 3, evaluate (Sec. V).

The same job for the paper's fixed deployment and for a distribution of deployments (the
`deployment` group). Writes to `run_dir`: config.yaml, scenario.json (+ scenario_start.json;
fixed deployment only), checkpoint/ (state after each chunk; `resume=True` continues a killed
run), model.msgpack (for `ojrs-decide` and `ojrs_jax.load_run`), metrics.csv (one row per
epoch), summary.json and the figures reward.png, loss.png and t_sa.png (paper Figs. 8-10).

The run directory's lock (`rundir.writing`) is held for the whole job, so a second process on
the same directory is refused. A directory that already holds a run is never overwritten:
without `resume` the job stops with a `ConfigError` naming it; `resume=True` continues it from
its checkpoint, or, when it is finished (a checkpoint at the last epoch and a readable
summary.json), writes nothing and returns the saved summary.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
from omegaconf import OmegaConf

from ojrs_jax.core.io import atomic_write_text, write_csv
from ojrs_jax.core.progress import log_summary, phase
from ojrs_jax.core.settings import ConfigError, positive_int, positive_number
from ojrs_jax.env.fixed import NEVER
from ojrs_jax.run.build import RunSpec, build, initial_sae
from ojrs_jax.run.checkpoint import load_state, save_model
from ojrs_jax.run.evaluation import epochs_to_stable, evaluate_run, scenario_at
from ojrs_jax.run.loop import run_chunks
from ojrs_jax.run.plots import plot_training
from ojrs_jax.run.rundir import resume_point, writing
from ojrs_jax.run.tracking import open_writer, tensorboard_setting
from ojrs_jax.system.exact import TIME_LIMIT
from ojrs_jax.system.scenario import save_scenario

log = logging.getLogger(__name__)

RESUME_IGNORES = ("resume", "progress", "eval", "tensorboard")  # a resume may change them


def finished_summary(run_dir: Path, at: int | None, total: int) -> dict | None:
    """The saved summary of a run whose checkpoint is at its last epoch, else None."""
    if at is None or at < total:
        return None
    try:
        s = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):  # killed after training, before the summary: finish it
        return None
    return s if isinstance(s, dict) and s.get("epochs") == total else None


# what a run writes: their presence means the directory already holds a run
RUN_FILES = ("config.yaml", "checkpoint/state.msgpack", "model.msgpack", "summary.json")


def refuse_existing_run(run_dir: Path) -> None:
    """A `ConfigError` when `run_dir` already holds (part of) a run: a new run never overwrites."""
    found = [f for f in RUN_FILES if (run_dir / f).exists()]
    if found:
        state = "a finished run" if (run_dir / "summary.json").exists() else "a run"
        raise ConfigError(
            f"run directory {run_dir} already holds {state} ({found[0]}): resume=true continues "
            "it (or reports it finished); to start afresh, use another directory"
        )


@dataclass(frozen=True)
class RunOptions:
    """The job settings of `ojrs-train` beside the run's model: the `eval` group, `tensorboard`
    and `progress` (typed; the defaults are conf/train.yaml's, checked by tests/test_defaults)."""

    draws: int = 1000  # eval.draws: held-out channel draws of the final evaluation
    exact: bool = True  # eval.exact: certify NRR against the SCIP optimum on each draw
    time_limit: float = TIME_LIMIT  # eval.time_limit: SCIP time limit per draw, s
    tensorboard: bool = False  # per-epoch metrics to <run dir>/tensorboard
    progress: bool = False  # force the progress bar even when stderr is not a terminal

    @classmethod
    def from_mapping(cls, c: dict) -> RunOptions:
        """From the resolved `ojrs-train` config; every value is checked before anything runs."""
        ev = dict(c.get("eval", {}) or {})
        if not isinstance(ev.get("exact", True), bool):
            raise ConfigError(f"eval.exact must be true or false, got {ev['exact']!r}")
        if not isinstance(c.get("progress", False), bool):
            raise ConfigError(f"progress must be true or false, got {c['progress']!r}")
        return cls(
            draws=positive_int({"draws": cls.draws, **ev}, "draws", "eval."),
            exact=ev.get("exact", True),
            time_limit=positive_number(ev, "time_limit", "eval.", TIME_LIMIT),
            tensorboard=tensorboard_setting(c.get("tensorboard", False)),
            progress=c.get("progress", False),
        )


def parse(cfg: dict) -> tuple[RunSpec, RunOptions]:
    """The typed run (`run.build`) and job options of an `ojrs-train` config, converted once
    at the entry point and checked before anything is written."""
    spec = build(cfg)
    return spec, RunOptions.from_mapping(spec.cfg)


def train_run(
    spec: RunSpec,
    opts: RunOptions,
    run_dir: Path,
    resume: bool = False,
    record: Callable[[Path], None] | None = None,
) -> dict:
    """Run (or resume) one training run into `run_dir`; returns the summary dict. `record(run_dir)`
    writes the caller's record of the run (Hydra's `.hydra/`) once the directory is claimed and
    the run goes on: a refused start and a finished run leave the directory as it was."""
    run_dir = Path(run_dir)
    with writing(run_dir):
        total = spec.train_cfg.n_blocks * spec.train_cfg.phi
        if not resume:
            refuse_existing_run(run_dir)
        at = resume_point(run_dir, spec.cfg, RESUME_IGNORES) if resume else None
        done = finished_summary(run_dir, at, total)
        if done is not None:
            print(f"{run_dir} is already finished ({total} epochs): nothing to do; its summary:")
            return done
        if record is not None:
            record(run_dir)
        return _train(spec, opts, run_dir, resume)


def task_line(spec: RunSpec) -> str:
    """The task in words: "N = 30, M = 2" or "random deployments, N in 5..100, M in 1..10"."""
    if spec.scn is not None:
        return f"N = {spec.scn.n_ue}, M = {spec.scn.n_mec}"
    d = spec.deployment
    return f"{d.kind} deployments, N in {d.n_ue[0]}..{d.n_ue[1]}, M in {d.n_mec[0]}..{d.n_mec[1]}"


def _train(spec: RunSpec, opts: RunOptions, run_dir: Path, resume: bool) -> dict:
    """The job of `train_run`, under the run directory's lock."""
    total = spec.train_cfg.n_blocks * spec.train_cfg.phi
    log.info("run %s: %s, %d epochs, seed %d", run_dir, task_line(spec), total, spec.seed)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(spec.cfg)))
    keys = spec.keys()
    params = spec.env_params()
    if spec.scn is not None:
        save_scenario(spec.scn, run_dir / "scenario_start.json")

    sae_params, sae_report = initial_sae(keys["sae"], spec)
    init = spec.trainer.init
    metrics: dict[str, np.ndarray] = {}
    # a checkpoint is read against the initial state's shapes: nothing (no warm start) is run
    restored = (
        load_state(run_dir, jax.eval_shape(init, keys["train"], sae_params, params))
        if resume
        else None
    )
    warm = spec.train_cfg.warm_start if restored is None else 0
    if restored is not None:
        state, metrics, _ = restored
        print(f"resuming {run_dir} at epoch {int(state.epoch)}")
        log.info("resuming %s at epoch %d", run_dir, int(state.epoch))
    else:
        if warm:
            log.info(
                "warm start: %d Adam steps on ASA labels of %d channels ...",
                warm,
                spec.train_cfg.warm_start_draws,
            )
        t_init = time.perf_counter()
        state = jax.block_until_ready(init(keys["train"], sae_params, params))
        init_s = time.perf_counter() - t_init
        if warm:
            log.info("warm start done in %.1f s", init_s)
    chunk = spec.train_cfg.chunk_blocks * spec.train_cfg.phi
    writer = open_writer(opts.tensorboard, run_dir)
    try:
        run = run_chunks(
            spec.trainer.run_chunk,
            state,
            params,
            total,
            chunk,
            metrics=metrics,
            checkpoint_dir=run_dir,
            progress=opts.progress,
            writer=writer,
        )
    finally:
        if writer is not None:
            writer.close()
    state, flat, compile_s = run.state, run.metrics, run.first_chunk_seconds
    train_s = run.seconds  # the chunks, first compilation included (train.log says the same)

    if spec.scn is not None:
        save_scenario(scenario_at(params, int(state.epoch)), run_dir / "scenario.json")
    save_model(run_dir, spec.trainer.model(state))
    cols = list(flat)
    write_csv(
        run_dir / "metrics.csv",
        ["epoch", *cols],
        ([e, *(flat[k][e].item() for k in cols)] for e in range(total)),
    )
    change = int(getattr(params, "change_epoch", NEVER))
    plot_training(flat, run_dir, change, adaptive=spec.train_cfg.adaptive)
    with phase(log, f"evaluation on {opts.draws} held-out problems"):
        report = evaluate_run(
            spec.trainer, state, params, keys["eval"], opts.draws, opts.exact, opts.time_limit
        )
    last = slice(max(0, total - 500), total)
    summary = {
        "epochs": total,
        "task": task_line(spec),
        "sae": {k: v for k, v in sae_report.items() if k != "loss_curve"},
        "train_seconds": train_s,
        **({"warm_start_seconds": init_s} if warm else {}),
        "first_chunk_seconds_with_compile": compile_s,
        "epochs_to_stable": epochs_to_stable(flat["reward"][: min(total, change)]),
        "final_t_sa": int(state.t_sa),
        "search_ratio_last500": float(
            np.mean(flat["latency_search"][last] / flat["latency"][last])
        ),
        "eval": report,
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, default=float))
    log_summary(
        log,
        "summary",
        {
            "epochs": total,
            "train s": train_s,
            "SAE Acc": sae_report.get("acc"),
            "policy L": report["latency_policy"],
            "greedy L": report["latency_greedy"],
            "exact L": report.get("latency_exact"),
            "NRR": report.get("nrr_policy"),
        },
    )
    return summary
