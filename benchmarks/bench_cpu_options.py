"""What each of the scheduler's XLA:CPU options buys: one batch, three compilations, interleaved.

    python benchmarks/bench_cpu_options.py RUN_DIR [--batch 4096] [--rounds 60] [--out FILE.json]

Builds the trained run's scheduler (`scheduler.make_scheduler`) three times, differing only in
the compiler options of its one jitted call:
- `defaults`: the package's defaults (XLA:CPU's library fusions off, as importing `ojrs_jax`
  leaves them);
- `library_fusions`: YNNPACK library fusions only (`xla_cpu_experimental_ynn_fusion_type`, the
  scheduler's options of session 7);
- `scheduler`: `scheduler.CPU_FUSIONS`, what the scheduler uses where `cpu_fusion_options()`'s
  check passes (library fusions, 512-bit vectors, max/min without NaN propagation).
Each round times one batched call of each, in turn, so that load on this shared machine falls on
all three alike; prints the median and minimum microseconds per decision of each, the ratio of
each median to the defaults' and whether every compilation gives the same decisions, and writes a
record (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.run.rundir import load_trained
from ojrs_jax.run.scheduler import CPU_FUSIONS, make_scheduler
from ojrs_jax.system.scenario import sample_channels

YNN = "xla_cpu_experimental_ynn_fusion_type"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=60)
    add_out_argument(ap, "bench_cpu_options")
    args = ap.parse_args()
    rec = Recording()
    run = load_trained(args.run)
    variants = {
        "defaults": None,
        "library_fusions": {YNN: CPU_FUSIONS[YNN]},
        "scheduler": dict(CPU_FUSIONS),
    }
    fns = {
        name: make_scheduler(
            run.scn, run.train_cfg, run.sae_cfg, run.policy, run.encoder, compiler_options=opts
        ).pipeline
        for name, opts in variants.items()
    }
    h = sample_channels(jax.random.key(1), run.scn, args.batch)
    decisions = {name: np.asarray(jax.block_until_ready(f(h))[0]) for name, f in fns.items()}
    same = all(np.array_equal(a, decisions["defaults"]) for a in decisions.values())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(h))
            times[name].append((time.perf_counter() - t0) / args.batch * 1e6)
    med = {name: float(np.median(t)) for name, t in times.items()}
    figures = {
        "batch": args.batch,
        "rounds": args.rounds,
        "options": {k: v or "package defaults" for k, v in variants.items()},
        "us_per_decision_median": med,
        "us_per_decision_min": {name: float(np.min(t)) for name, t in times.items()},
        "median_over_defaults": {name: med[name] / med["defaults"] for name in fns},
        "scheduler_over_library_fusions": med["scheduler"] / med["library_fusions"],
        "same_decisions": same,
        "statistics": "per decision: median and minimum over rounds, compilations interleaved",
    }
    for name in fns:
        print(
            f"{name:16s} {med[name]:.3f} us/decision median "
            f"({figures['median_over_defaults'][name]:.3f} x defaults)"
        )
    print(
        f"scheduler / library fusions: {figures['scheduler_over_library_fusions']:.3f}; "
        f"same decisions: {same}"
    )
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
