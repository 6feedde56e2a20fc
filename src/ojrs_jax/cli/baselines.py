"""`ojrs-baselines`: weighted latency of the reference rules over sampled epochs (paper Table II).

Samples E channel epochs of the configured scenario, runs every method of `methods` on each, and
prints mean weighted latency L, reward 1/L and per-decision time; writes `baselines.csv` (one row
per epoch and method) and `summary.csv` to the Hydra run directory. Exact (SCIP MIQP) is the
certified optimum; the command reports how many draws any heuristic beat it (must be 0).

    ojrs-baselines scale=paper_m2 draws=200
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ojrs_jax.app.hydra import hydra_cli, to_container
from ojrs_jax.experiments.baselines import (
    EXACT,
    BaselinesConfig,
    run_baselines,
    summarise,
    write_outputs,
)


def format_table(rows: list[tuple]) -> str:
    head = f"{'method':<10}{'latency L (s)':>15}{'std':>9}{'median':>9}{'reward 1/L':>12}"
    head += f"{'time/decision':>15}"
    head += f"{'draws < exact':>15}"
    lines = [head, "-" * len(head)]
    for name, mean, std, med, rew, sec, beat in rows:
        t = f"{sec * 1e3:.3f} ms" if sec < 1 else f"{sec:.3f} s"
        lines.append(
            f"{name:<10}{mean:>15.4f}{std:>9.3f}{med:>9.3f}{rew:>12.5f}{t:>15}{beat!s:>15}"
        )
    return "\n".join(lines)


@hydra_cli("baselines")
def main(cfg: DictConfig) -> None:
    results = run_baselines(BaselinesConfig.from_mapping(to_container(cfg)))
    rows = summarise(results)
    print(format_table(rows))
    if EXACT in results and not results[EXACT]["optimal"].all():
        n_bad = int((~results[EXACT]["optimal"]).sum())
        print(f"warning: SCIP hit its time limit on {n_bad} draws; those rows are not certified")
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    write_outputs(results, rows, out)
    print(f"wrote {out / 'summary.csv'} and {out / 'baselines.csv'}")


if __name__ == "__main__":
    main()
