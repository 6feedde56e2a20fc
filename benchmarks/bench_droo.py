"""DROO's quantisation for M + 1 options: single moves against second options, on the `paper` suite.

    python benchmarks/bench_droo.py [--seeds 0 1] [--frames 30000] [--suite paper]

Trains DROO (`ojrs_jax.bench.droo`, its paper's settings) on each cell's training distribution
with each quantisation, `moves` (the default: the most likely decision and K - 1 single moves
ranked by p_ij / p_i,top) and `second` (candidate k + 1 moves the k least confident UEs to their
second option), for each training seed, and scores the decisions against the suite's certified
optima. Prints and records (benchmarks/record.py) the NRR of every cell, quantisation and seed,
and the training time.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--frames", type=int, default=30000)
    ap.add_argument("--suite", default="paper")
    add_out_argument(ap, "bench_droo")
    args = ap.parse_args()
    rec = Recording()
    import jax.numpy as jnp

    from ojrs_jax.bench import droo
    from ojrs_jax.bench import suites as S
    from ojrs_jax.bench.entries import droo_prepare
    from ojrs_jax.bench.harness import score_cell

    suite = S.load_suite(args.suite)
    figures: dict = {"suite": suite.name, "version": suite.version, "frames": args.frames}
    rows = []
    for quantise in ("moves", "second"):
        cfg = replace(droo.DROOConfig(), frames=args.frames, quantise=quantise)
        for seed in args.seeds:
            for cell in suite.cells:
                decide, seconds = droo_prepare(cfg, seed)(suite, cell)
                a = np.asarray(decide(suite.deployment(cell), jnp.asarray(cell.h)))
                nrr = score_cell(suite, cell, a)["nrr"]
                rows.append(
                    {
                        "cell": cell.name,
                        "quantise": quantise,
                        "seed": seed,
                        "nrr": nrr,
                        "s": seconds,
                    }
                )
                print(
                    f"{cell.name} quantise={quantise} seed={seed}: NRR {nrr:.4f}, "
                    f"trained in {seconds:.1f} s",
                    flush=True,
                )
    for quantise in ("moves", "second"):
        for cell in suite.cells:
            v = [r["nrr"] for r in rows if r["quantise"] == quantise and r["cell"] == cell.name]
            print(f"{cell.name} quantise={quantise}: NRR mean over seeds {np.mean(v):.4f}")
            figures[f"{cell.name}_{quantise}_mean"] = float(np.mean(v))
    figures["runs"] = rows
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
