"""Decision time of a trained OJRS scheduler (policy, P2 closed form) beside the CPU's limit.

    python benchmarks/bench_decide.py RUN_DIR [--batch 4096] [--repeats 2000]
                                      [--batch-repeats 100] [--out FILE.json] [--cpu-devices 2]

Loads the run as `ojrs-decide` does (`ojrs_jax.load_run`: one jitted call from channel to
decision and allocation) and prints, measured in the same process:
- microseconds for one call on one channel (the online path) and per decision batched, median
  and minimum over the calls (on a shared machine the minimum is the least disturbed call), and
  the cores the batched calls kept busy (the process's CPU time over their wall time);
- the policy network's FLOPs per decision (`Scheduler.flops_per_decision`, dense layers), the
  GFLOP/s a large float32 matrix product reaches here, and so the FLOP bound on decisions/s
  (matmul GFLOP/s / FLOPs per decision), with the batched throughput's distance to it, and,
  for the per-UE network, the GFLOP/s of its hidden layer's product over a chunk of decisions
  and that product's time per decision (each product timed under XLA's default compilation and
  under the scheduler's compiler options, `scheduler.cpu_fusion_options`, the better one kept);
- the paper's figure, 17.4 ms per OJRS decision at N = 30 (Table II).
`--cpu-devices D` splits the CPU into D JAX devices (`jax_num_cpu_devices`, as the environment
variable JAX_NUM_CPU_DEVICES does) before anything runs; the scheduler then splits a batch over
them (one channel still runs on one device). The matrix product is measured on one device.
Writes the figures, with the run's network settings, the command, machine, date, commit and
load, to a record (benchmarks/record.py). The times depend on the network's shape, not on how
long it was trained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.run.scheduler import BATCH_CHUNK, cpu_fusion_options, load_run
from ojrs_jax.system.scenario import sample_channels


def call_times(fn, *args, reps: int) -> tuple[float, float, float]:
    """(median, minimum) wall time of `reps` calls after one that compiles, and the cores this
    process kept busy over those calls (its CPU time over their wall time). On a shared machine
    the minimum is the least disturbed call; both are recorded."""
    jax.block_until_ready(fn(*args))
    t = []
    cpu0, wall0 = os.times(), time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        t.append(time.perf_counter() - t0)
    cpu1, wall1 = os.times(), time.perf_counter()
    cores = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / (wall1 - wall0)
    return float(np.median(t)), float(np.min(t)), cores


def layer_gflops(rows: int, k: int, n: int, reps: int = 20, options=None) -> float:
    """GFLOP/s of a (rows x k) @ (k x n) float32 product: the shape of one hidden layer over a
    chunk of decisions (the work the scheduler's largest matrix product does), compiled with
    XLA compiler `options` (None: the defaults)."""
    a = jax.random.normal(jax.random.key(0), (rows, k), jnp.float32)
    w = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y, compiler_options=options)
    return 2 * rows * k * n / call_times(f, a, w, reps=reps)[1] / 1e9


def matmul_gflops(n: int = 2048, reps: int = 10, options=None) -> float:
    """GFLOP/s of an n x n float32 matrix product (this CPU's practical peak for dense work)."""
    return layer_gflops(n, n, n, reps=reps, options=options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2000, help="calls on one channel")
    ap.add_argument(
        "--batch-repeats",
        type=int,
        default=100,
        help="batched calls (records before session 8 made 20: a short burst of other work on "
        "this shared machine then moved the median)",
    )
    ap.add_argument("--cpu-devices", type=int, default=0, help="JAX CPU devices (0: JAX's)")
    add_out_argument(ap, "bench_decide")
    args = ap.parse_args()
    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    rec = Recording()
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    sched = load_run(args.run)
    scn = sched.scn
    H = sample_channels(jax.random.key(1), scn, args.batch)
    one = H[0]
    single, single_min, _ = call_times(sched.pipeline, one, reps=args.repeats)
    batched, batched_min, cores_busy = call_times(sched.pipeline, H, reps=args.batch_repeats)
    batched, batched_min = batched / args.batch, batched_min / args.batch
    # The peak is the better of XLA's default product and the product compiled as the
    # scheduler is (its library fusions, `cpu_fusion_options`): the bound is the CPU's, not
    # one compilation's.
    options = cpu_fusion_options()
    peaks = {"default": matmul_gflops()}
    if options:
        peaks["scheduler_options"] = matmul_gflops(options=options)
    peak = max(peaks.values())
    flops = sched.flops_per_decision
    bound = peak * 1e9 / flops
    out = {
        "device": str(jax.devices()[0]),
        "devices": len(jax.local_devices()),
        "n_ue": scn.n_ue,
        "n_mec": scn.n_mec,
        "single_call_us": single * 1e6,
        "single_call_us_min": single_min * 1e6,
        "batched_us_per_decision": batched * 1e6,
        "batched_us_per_decision_min": batched_min * 1e6,
        "batched_decisions_per_s": 1.0 / batched,
        "batched_decisions_per_s_best": 1.0 / batched_min,
        "batch": args.batch,
        "batch_repeats": args.batch_repeats,
        "cores_busy_batched": cores_busy,
        "policy_flops_per_decision": flops,
        "matmul_gflops": peak,
        "matmul_gflops_by_compilation": peaks,
        "compiler_options": options or "XLA defaults",
        "achieved_gflops_batched": flops / batched / 1e9,
        "achieved_gflops_batched_best": flops / batched_min / 1e9,
        "flop_bound_decisions_per_s": bound,
        "bound_over_achieved": bound * batched,
        "bound_over_achieved_best": bound * batched_min,
        "statistics": "times: median and minimum of the calls; matmul: best of 10",
        "paper_ms_per_decision": 17.4,
        "speedup_vs_paper_single": 17.4e-3 / single,
    }
    t = cfg.get("train", {})
    if t.get("arch") == "per_ue" and len(t.get("ue_hidden") or []) >= 2:
        h0, h1 = t["ue_hidden"][:2]
        rows = BATCH_CHUNK * scn.n_ue
        g = layer_gflops(rows, h0, h1)
        if options:
            g = max(g, layer_gflops(rows, h0, h1, options=options))
        out["hidden_layer_product"] = f"({rows} x {h0}) @ ({h0} x {h1})"
        out["hidden_layer_gflops"] = g
        out["hidden_layer_us_per_decision"] = 2 * scn.n_ue * h0 * h1 / g / 1e3
    print(json.dumps(out, indent=1))
    summary = (
        json.loads((args.run / "summary.json").read_text())
        if (args.run / "summary.json").exists()
        else {}
    )
    out["run"] = {
        "dir": str(args.run),
        "train": {k: t.get(k) for k in ("arch", "state", "hidden", "ue_embed", "epochs")},
        "epochs_trained": summary.get("epochs"),
    }
    rec.write(args.out, out)


if __name__ == "__main__":
    main()
