"""`ojrs-fig7`: best fitness per iteration of ASA vs plain SA, paper Fig. 7 (eqs. 26-29).

Samples `draws` channel epochs, starts ASA (h-mutation) and plain SA (random neighbours) from the
same decision and plots the best weighted latency found so far against the SCIP optimum
(`ojrs_jax.experiments.fig7`). Writes fig7.png and fig7.csv to the Hydra run directory.

    ojrs-fig7 scale=paper_m2 draws=200
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ojrs_jax.app.hydra import hydra_cli, to_container
from ojrs_jax.experiments.fig7 import Fig7Config, run_fig7


@hydra_cli("fig7")
def main(cfg: DictConfig) -> None:
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    s = run_fig7(Fig7Config.from_mapping(to_container(cfg)), out)
    exact = "-" if math.isnan(s["exact"]) else f"{s['exact']:.4f}"  # exact=false: not solved
    print(
        f"mean L: start {s['start']:.4f}  ASA {s['asa_final']:.4f}  SA {s['sa_final']:.4f}  "
        f"exact {exact}"
    )
    print(f"wrote {out / 'fig7.png'} and {out / 'fig7.csv'}")


if __name__ == "__main__":
    main()
