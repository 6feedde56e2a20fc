"""`ojrs-aggregate`: tables and figures from `ojrs-reproduce` job directories (Sec. V).

    ojrs-aggregate multirun/reproduce/2026-11-28_17-00-00 [more dirs ...] [--out results]

Finds every result.json under the given directories (a multirun sweep, single runs, or several
sweeps, e.g. the tuned and the paper presets) and writes results.md, table2/table3/drl as
Markdown and CSV, figures/ (Figs. 3-10 and the NRR curves) and raw/ (each job's metrics).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ojrs_jax.app.hydra import cli_guard
from ojrs_jax.experiments.results import aggregate

EXAMPLES = """examples:
  ojrs-aggregate multirun/2026-12-06/10-00-00                 # one sweep, into its results/
  ojrs-aggregate runs/paper runs/tuned --out tables           # two presets side by side
"""


@cli_guard
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="ojrs-aggregate",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("dirs", nargs="+", type=Path, help="sweep or job directories")
    ap.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <first dir>/results)"
    )
    a = ap.parse_args(argv)
    out = a.out if a.out is not None else a.dirs[0] / "results"
    report = aggregate(a.dirs, out)
    print(f"aggregated {report['jobs']} jobs into {out}: {', '.join(report['written'])}")
    print(f"summary: {out / 'results.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
