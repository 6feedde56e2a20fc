"""One training run of `ojrs-train`: pretrain the 2r-SAE, run Algorithm 3, evaluate (Sec. V).

Writes to `run_dir`: config.yaml, scenario.json (+ scenario_start.json), checkpoint/ (state after
each chunk; `resume=True` continues a killed run), model.msgpack (for `ojrs-decide`), metrics.csv
(one row per epoch), summary.json and the figures reward.png, loss.png and t_sa.png (paper
Figs. 8-10).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ojrs_jax.checkpoint import check_resume_config, load_state, save_model, save_state
from ojrs_jax.config import positive_int, positive_number, to_container
from ojrs_jax.evaluation import epochs_to_stable, evaluate_run, scenario_at
from ojrs_jax.io import atomic_write_text, write_csv
from ojrs_jax.pipeline import build, pretrain_sae
from ojrs_jax.plots import plot_training
from ojrs_jax.sae import init_sae
from ojrs_jax.scenario import save_scenario


def _finite(tree) -> bool:
    return all(
        bool(np.all(np.isfinite(np.asarray(x))))
        for x in jax.tree.leaves(tree)
        if np.issubdtype(np.asarray(x).dtype, np.floating)
    )


def train_run(cfg: DictConfig | dict, run_dir: Path, resume: bool = False) -> dict:
    """Run (or resume) one training run into `run_dir`; returns the summary dict."""
    c = to_container(cfg)
    spec = build(c)
    ev = dict(c.get("eval", {}) or {})
    n_eval = positive_int({"channels": 1000, **ev}, "channels", "eval.")
    time_limit = positive_number(ev, "time_limit", "eval.", 60.0)
    if resume:
        check_resume_config(run_dir, c, ignore=("resume", "progress", "eval"))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(c)))
    keys = spec.keys()
    env = spec.env()
    save_scenario(spec.scn, run_dir / "scenario_start.json")

    t0 = time.perf_counter()
    if spec.train_cfg.state == "sae":
        sae_params, sae_report = pretrain_sae(keys["sae"], spec)
    else:  # the policy reads the channel, never the code: an untrained SAE fills the state
        n_in = spec.scn.n_ue * spec.scn.n_mec
        sae_params = init_sae(keys["sae"], spec.sae_cfg, n_in)
        sae_report = {"seconds": 0.0, "pretrained": False}
    state = spec.trainer.init(keys["train"], sae_params)
    metrics: dict[str, list[np.ndarray]] = {}
    restored = load_state(run_dir, state) if resume else None
    if restored is not None:
        state, saved, _ = restored
        metrics = {k: [v] for k, v in saved.items()}
        print(f"resuming {run_dir} at epoch {int(state.epoch)}")
    total = spec.train_cfg.n_blocks * spec.train_cfg.phi
    chunk = spec.train_cfg.chunk_blocks * spec.train_cfg.phi
    compile_s = None
    with tqdm(
        total=total,
        initial=int(state.epoch),
        unit="epoch",
        file=sys.stderr,
        disable=not sys.stderr.isatty() and not c.get("progress", False),
    ) as bar:
        while int(state.epoch) < total:
            tc = time.perf_counter()
            new_state, m = spec.trainer.run_chunk(state, env)
            jax.block_until_ready(new_state)
            if compile_s is None:
                compile_s = time.perf_counter() - tc
            m = jax.tree.map(np.asarray, m)
            bad_loss = ~np.isfinite(m["loss"])
            if bad_loss.any() or not _finite((new_state.policy, new_state.sae)):
                # the loss is per block; without a bad loss, blame the chunk's last epoch
                bad = int(state.epoch) + int(np.argmax(bad_loss) if bad_loss.any() else chunk - 1)
                kept = (
                    f"the last good checkpoint (epoch {int(state.epoch)}) is kept in "
                    f"{run_dir / 'checkpoint'}"
                    if int(state.epoch) > 0
                    else "no checkpoint was written (the first chunk failed)"
                )
                raise FloatingPointError(f"non-finite loss or parameters at epoch {bad}; {kept}")
            state = new_state
            for k, v in m.items():
                metrics.setdefault(k, []).append(v)
            flat = {k: np.concatenate(v) for k, v in metrics.items()}
            save_state(run_dir, state, flat, int(state.epoch))
            bar.update(chunk)
            bar.set_postfix(
                reward=f"{float(np.mean(m['reward'][-100:])):.4f}", t_sa=int(m["t_sa"][-1])
            )
    train_s = time.perf_counter() - t0 - sae_report["seconds"]
    flat = {k: np.concatenate(v)[:total] for k, v in metrics.items()}

    save_model(run_dir, {"policy": state.policy, "encoder": state.sae.online})
    save_scenario(scenario_at(env, int(state.epoch)), run_dir / "scenario.json")
    cols = list(flat)
    write_csv(
        run_dir / "metrics.csv",
        ["epoch", *cols],
        ([e, *(flat[k][e].item() for k in cols)] for e in range(total)),
    )
    plot_training(flat, run_dir, int(env.change_epoch))
    report = evaluate_run(
        spec.trainer,
        state,
        env,
        keys["eval"],
        n_eval,
        bool(ev.get("exact", True)),
        time_limit,
    )
    summary = {
        "epochs": total,
        "sae": {k: v for k, v in sae_report.items() if k != "loss_curve"},
        "train_seconds": train_s,
        "first_chunk_seconds_with_compile": compile_s,
        "epochs_to_stable": epochs_to_stable(flat["reward"][: min(total, int(env.change_epoch))]),
        "final_t_sa": int(state.t_sa),
        "eval": report,
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, default=float))
    return summary
