"""Every figure of issue 8 in one run, printed and written as a record (asserts nothing about time).

    python benchmarks/run_all.py [--quick] [--out benchmarks/results/cpu_all.json]

Sections, each ratio measured side by side in this run (median wall times, compile separated,
`jax.block_until_ready` before every clock read):
1. train: Algorithm 3 at paper settings (N = 30, M = 2, conf/train/paper.yaml): 2r-SAE pretraining,
   then T_DRL epochs in chunks of 1000 with the chunk compiled once apart (compile_s), total and
   ms per epoch; then the JAX epoch against the NumPy reference loop (benchmarks/numpy_ref.py) on
   a short run, after checking the NumPy backprop against jax.grad (bench_numpy_ratio).
2. decide: the pipeline trained in 1 (encoder, policy, P2 latency), one call and batched over
   4096, against the same weights in NumPy (decisions checked equal first).
3. asa: ASA from Greedy (K = 128, T_SA = 20), one instance and vmapped over 256, against NumPy ASA
   (mean latency over 50 draws checked first).
4. p2: P2 closed form against jaxopt's ProjectedGradient (bench_p2), one instance and 256 vmapped.
5. sweep: N x M points, each in a fresh process (benchmarks/bench_scale.py: train preset `large`
   trained from scratch for a fixed number of epochs, decisions, peak memory, NRR of the policy,
   of ASA and of Greedy against SCIP's certified optimum). A point that fails or overruns its
   time limit is reported as skipped with the reason.
6. large: (full run only) the `large` preset at N = 1000, M = 20 for T_DRL = 10000 epochs, the
   issue's large-scale target, with NRR on more draws.

Sizes:            --quick                      full
  T_DRL (1)       2000                         10000
  NumPy ratio     50 epochs, 1 s per figure    200 epochs, 3 s per figure
  sweep           N {30, 1000} x M {2, 20},    N {30, 100, 300, 1000} x M {2, 5, 10, 20},
                  200 epochs, 2 draws, SCIP    1000 epochs, 20 draws (N <= 100), 5 (N = 300),
                  10 s per draw, 240 s/point   3 (N = 1000), SCIP 20 s per draw, 300 s per point
  P2 (4)          64 vmapped                   256 vmapped
  large (6)       -                            10000 epochs, 5 draws, SCIP 30 s per draw
Other jobs on the machine stretch the run: the record (benchmarks/record.py: command, machine,
date, commit, load at start and end) also gives the load average per section and per sweep point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_numpy_ratio import (  # noqa: E402
    asa_ratio,
    decide_ratio,
    grad_check,
    paper_cfg,
    train_ratio,
)
from bench_p2 import p2_compare  # noqa: E402
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.run.build import build, pretrain_sae  # noqa: E402

PAPER = {"decision_ms": 17.4, "asa_ms": 235.4}


def train_full(epochs: int) -> tuple:
    """Paper-settings Algorithm 3 for `epochs` epochs: (spec, trained state, figures)."""
    spec = build(paper_cfg(epochs=epochs, chunk=1000))
    keys = spec.keys()
    sae_params, sae_rep = pretrain_sae(keys["sae"], spec)
    env = spec.env_params()
    st = spec.trainer.init(keys["train"], sae_params)
    t0 = time.perf_counter()
    run = spec.trainer.run_chunk.lower(st, env).compile()
    compile_s = time.perf_counter() - t0
    chunks = []
    n_chunks = spec.train_cfg.n_blocks // spec.train_cfg.chunk_blocks
    for _ in range(n_chunks):
        t0 = time.perf_counter()
        st, met = jax.block_until_ready(run(st, env))
        chunks.append(time.perf_counter() - t0)
    total = float(np.sum(chunks))
    done = int(st.epoch)
    return (
        spec,
        st,
        {
            "settings": "conf/train/paper.yaml, replay=per, N=30, M=2 (scale=paper_m2)",
            "sae_pretrain_s_incl_compile": sae_rep["seconds"],
            "sae_acc": sae_rep["acc"],
            "epochs": done,
            "chunk_epochs": done // n_chunks,
            "compile_s": compile_s,
            "total_s_excl_compile": total,
            "ms_per_epoch": total / done * 1e3,
            "ms_per_epoch_median_chunk": float(np.median(chunks)) / (done // n_chunks) * 1e3,
            "final_t_sa": int(st.t_sa),
            "mean_latency_last_chunk": float(np.mean(met["latency"])),
        },
    )


def sweep_point(n: int, m: int, epochs: int, draws: int, limit: float, timeout: float) -> dict:
    """Run benchmarks/bench_scale.py for one point in a fresh process; its record's figures,
    with the point's own load record under `point_load`."""
    with tempfile.TemporaryDirectory() as tmp:
        rec_file = Path(tmp) / "point.json"
        cmd = [
            sys.executable,
            str(HERE / "bench_scale.py"),
            "--n-ue",
            str(n),
            "--mecs",
            str(m),
            "--epochs",
            str(epochs),
            "--draws",
            str(draws),
            "--time-limit",
            str(limit),
            "--out",
            str(rec_file),
        ]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"n_ue": n, "n_mec": m, "skipped": f"over the {timeout:.0f} s limit per point"}
        if p.returncode != 0 or not rec_file.exists():
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"n_ue": n, "n_mec": m, "skipped": f"exit {p.returncode}: {tail[0][:300]}"}
        rec = json.loads(rec_file.read_text())
    res = rec["figures"]
    res["point_load"] = rec["load"]
    res["process_s"] = time.perf_counter() - t0
    return res


def sweep_row(r: dict) -> str:
    if "skipped" in r:
        return f"{r['n_ue']:>5} {r['n_mec']:>3}  skipped: {r['skipped']}"
    nrr = r["nrr"]
    f = lambda x: "   -  " if x is None else f"{x:6.3f}"  # noqa: E731
    return (
        f"{r['n_ue']:>5} {r['n_mec']:>3} {r['decide']['single_us']:>9.0f} "
        f"{r['decide']['batched_us_per_decision']:>9.2f} {r['train']['ms_per_epoch']:>8.2f} "
        f"{r['train']['compile_s']:>7.1f} {r['peak_rss_mb']:>7.0f} "
        f"{r['train']['xla_temp_mb']:>7.1f} {nrr['certified']:>2}/{nrr['draws']:<2} "
        f"{f(nrr['policy'])} {f(nrr['asa_from_greedy'])} {f(nrr['asa_from_policy'])} "
        f"{f(nrr['greedy'])} {f(nrr['all_local'])}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (see the docstring)")
    add_out_argument(ap, "cpu_all")
    ap.add_argument("--skip", nargs="*", default=[], help="sections to leave out (names above)")
    args = ap.parse_args()
    rec = Recording()
    q = args.quick
    budget = 1.0 if q else 3.0
    t_all = time.perf_counter()
    out: dict = {"quick": q, "skipped_sections": args.skip, "paper": PAPER}

    def section(name: str, fn):
        if name in args.skip:
            return
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        res = fn()
        res["section_s"] = time.perf_counter() - t0
        res["load_start_end"] = [load0, os.getloadavg()[0]]
        out[name] = res
        print(json.dumps({name: res}), file=sys.stderr, flush=True)

    trained: dict = {}

    def train():
        spec, st, res = train_full(2000 if q else 10000)
        trained.update(spec=spec, st=st)
        ratio_spec = build(paper_cfg(epochs=50 if q else 200, chunk=50 if q else 200))
        res["numpy_ratio"] = {
            **grad_check(spec, st),
            **train_ratio(ratio_spec, 50 if q else 200, 2 if q else 3),
        }
        return res

    section("train", train)

    def decide():
        if "spec" not in trained:
            spec, st, _ = train_full(1000)
            trained.update(spec=spec, st=st)
        res = decide_ratio(trained["spec"], trained["st"], budget)
        res["trained_epochs"] = int(trained["st"].epoch)
        res["paper_speedup_single"] = PAPER["decision_ms"] * 1e3 / res["jax_single_us"]
        return res

    section("decide", decide)
    spec30 = build(paper_cfg())
    section("asa", lambda: asa_ratio(spec30, budget))
    section("p2", lambda: p2_compare(spec30.scn, budget, 64 if q else 256))

    def sweep():
        ns, ms = ((30, 1000), (2, 20)) if q else ((30, 100, 300, 1000), (2, 5, 10, 20))
        epochs = 200 if q else 1000
        limit, timeout = (10.0, 240.0) if q else (20.0, 300.0)
        rows = []
        for n in ns:
            for m in ms:
                draws = 2 if q else (20 if n <= 100 else 5 if n <= 300 else 3)
                r = sweep_point(n, m, epochs, draws, limit, timeout)
                print(sweep_row(r), file=sys.stderr, flush=True)
                rows.append(r)
        return {"epochs": epochs, "scip_time_limit_s": limit, "points": rows}

    section("sweep", sweep)
    if not q:
        section(
            "large",
            lambda: sweep_point(1000, 20, 10000, 5, 30.0, 1200.0),
        )
    out["total_s"] = time.perf_counter() - t_all
    out["total_min"] = out["total_s"] / 60
    print(json.dumps(out, indent=1))
    record = rec.write(args.out, out)
    print_summary(out, record)


def print_summary(out: dict, record: dict) -> None:
    """A short table of the headline figures on stderr."""
    p = lambda *a: print(*a, file=sys.stderr)  # noqa: E731
    mach = record["machine"]
    p(
        f"\n== {mach['cpu_model']}, {mach['cores']} cores, jax {mach.get('jax')}, "
        f"{record['load']['label']}, total {out['total_s']:.0f} s"
    )
    if "train" in out:
        t, r = out["train"], out["train"]["numpy_ratio"]
        p(
            f"train: {t['ms_per_epoch']:.2f} ms/epoch, {t['epochs']} epochs in "
            f"{t['total_s_excl_compile']:.1f} s + compile {t['compile_s']:.1f} s; NumPy/JAX "
            f"{r['ratio_numpy_over_jax_matched']:.1f} (same coverage), "
            f"{r['ratio_numpy_over_jax_paper']:.1f} (paper settings)"
        )
    if "decide" in out:
        d = out["decide"]
        p(
            f"decide: {d['jax_single_us']:.0f} us one call (NumPy/JAX "
            f"{d['ratio_single_numpy_over_jax']:.1f}), {d['jax_batched_decisions_per_s']:,.0f}/s "
            f"batched (NumPy/JAX {d['ratio_batched_numpy_over_jax']:.1f})"
        )
    if "asa" in out:
        a = out["asa"]
        p(
            f"asa: {a['jax_single_ms']:.2f} ms one, {a['jax_vmapped_ms_per_instance']:.3f} ms "
            f"vmapped; NumPy/JAX {a['ratio_single_numpy_over_jax']:.1f} / "
            f"{a['ratio_numpy_over_jax_vmapped']:.1f}"
        )
    if "p2" in out:
        c = out["p2"]
        p(
            f"p2: closed form {c['closed_form_single_us']:.0f} us, "
            f"jaxopt {c['jaxopt_single_us']:.0f} us "
            f"(x{c['ratio_single_jaxopt_over_closed_form']:.0f}); batched x"
            f"{c['ratio_batched_jaxopt_over_closed_form']:.0f}"
        )
    if "sweep" in out:
        p(
            "    N   M  1 call us  batch us  ms/ep  compile  rss MB  temp MB cert "
            "policy  ASA-g  ASA-p greedy  local  (NRR vs exact)"
        )
        for r in out["sweep"]["points"]:
            p(sweep_row(r))
    if "large" in out:
        p("large (T_DRL = 10000):")
        p(sweep_row(out["large"]))


if __name__ == "__main__":
    main()
