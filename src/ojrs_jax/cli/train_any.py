"""`ojrs-train-any`: train one feature policy over a deployment distribution (Algorithm 3).

    ojrs-train-any                                    # deployment=random, general=default
    ojrs-train-any deployment=mobile general.epochs=2000

Writes config.yaml, any_model.msgpack (for `ojrs-decide --deployment` and
`ojrs_jax.any_scheduler.load_any_run`), metrics.csv and summary.json to the Hydra run directory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
import jax
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from ojrs_jax.any_scheduler import save_any_run
from ojrs_jax.config import hydra_cli, seed_value, system_config, to_container
from ojrs_jax.deployment import DeploymentConfig, make_sampler
from ojrs_jax.general import AnyTrainConfig, make_any_trainer
from ojrs_jax.io import atomic_write_text, write_csv


def train_any_run(c: dict, run_dir: Path, progress: bool = False) -> dict:
    """Train per the plain config `c` into `run_dir`; returns the summary."""
    sys_cfg = system_config(c)
    dcfg = DeploymentConfig.from_mapping(dict(c.get("deployment") or {}))
    gcfg = AnyTrainConfig.from_mapping(dict(c.get("general") or {}), c.get("asa"), c.get("replay"))
    seed = seed_value(c)
    trainer = make_any_trainer(gcfg, make_sampler(dcfg, sys_cfg))
    # training keys are key(seed) split; evaluations use fold_in(key(10_000 + seed), ...)
    state = trainer.init(jax.random.key(seed))
    total, chunk = gcfg.n_blocks * gcfg.phi, gcfg.chunk_blocks * gcfg.phi
    metrics: dict[str, list] = {}
    t0, compile_s = time.perf_counter(), None
    with tqdm(total=total, unit="epoch", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:  # fmt: skip
        while int(state.epoch) < total:
            tc = time.perf_counter()
            state, m = trainer.run_chunk(state)
            jax.block_until_ready(state)
            compile_s = compile_s if compile_s is not None else time.perf_counter() - tc
            for k, v in m.items():
                metrics.setdefault(k, []).append(np.asarray(v))
            # the model after every chunk: a run stopped early leaves a usable scheduler
            save_any_run(run_dir, c, state.policy)
            if progress and not sys.stderr.isatty():
                print(f"epoch {int(state.epoch)}/{total}: {time.perf_counter() - t0:.0f} s, "
                      f"policy/ASA ratio {float(np.mean(m['ratio'])):.4f}", file=sys.stderr,
                      flush=True)  # fmt: skip
            bar.update(chunk)
            bar.set_postfix(ratio=f"{float(np.mean(m['ratio'][-100:])):.4f}")
    train_s = time.perf_counter() - t0
    flat = {k: np.concatenate(v) for k, v in metrics.items()}
    save_any_run(run_dir, c, state.policy)
    cols = list(flat)
    write_csv(run_dir / "metrics.csv", ["epoch", *cols],
              ([e, *(flat[k][e].item() for k in cols)] for e in range(total)))  # fmt: skip
    last = slice(max(0, total - 500), total)
    summary = {
        "epochs": total,
        "train_seconds": train_s,
        "first_chunk_seconds_with_compile": compile_s,
        "ratio_last500": float(np.mean(flat["ratio"][last])),
        "loss_last": float(flat["loss"][-1]),
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


@hydra_cli("train_any")
def main(cfg: DictConfig) -> None:
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    c = to_container(cfg)
    s = train_any_run(c, out, bool(c.get("progress", False)))
    print(
        f"trained {s['epochs']} epochs in {s['train_seconds']:.1f} s (first chunk with compile "
        f"{s['first_chunk_seconds_with_compile']:.1f} s); policy / ASA latency ratio over the "
        f"last 500 epochs {s['ratio_last500']:.4f}"
    )
    print(f"run directory: {out}")


if __name__ == "__main__":
    main()
