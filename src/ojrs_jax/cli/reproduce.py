"""`ojrs-reproduce`: one experiment of the paper's Sec. V per job; `-m` sweeps them all.

    ojrs-reproduce -m                                  # Tables II-III, Figs. 3-10 (docs)
    ojrs-reproduce -m hydra/launcher=local_joblib      # the same jobs in parallel processes
    ojrs-reproduce experiment=table3_m4 reproduce.seeds=8

Each job writes result.json, its raw metrics and figures to its Hydra job directory; a multirun
ends by aggregating the sweep into <sweep dir>/results (tables as Markdown and CSV, figures).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from ojrs_jax.app.hydra import hydra_cli
from ojrs_jax.experiments.reproduce import run_experiment
from ojrs_jax.experiments.results import job_summary


def _label_preset(cfg: DictConfig) -> None:
    """reproduce.preset defaults to the chosen `train` preset (paper | tuned | ...)."""
    if not cfg.reproduce.get("preset"):
        choice = hydra.core.hydra_config.HydraConfig.get().runtime.choices.get("train", "")
        with open_dict(cfg):
            cfg.reproduce.preset = str(choice or "")


@hydra_cli("reproduce")
def main(cfg: DictConfig) -> None:
    _label_preset(cfg)
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    try:
        r = run_experiment(cfg, out)
    except FloatingPointError as e:  # training diverged: no result.json is written
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    print(f"{r['name']}: done in {r['wall_seconds']:.1f} s; wrote {out / 'result.json'}")
    print(f"  {job_summary(r)}")


if __name__ == "__main__":
    main()
