"""Benchmark of ASA (Algorithm 2) and PSO: gap to the exact MIQP optimum, time per decision.

For M = 1..5 (conf/scale/paper_m{M}.yaml with conf/system/default.yaml, N = 30), over `--draws`
channel draws: mean gap L / L* - 1 of Greedy, ASA from Greedy (T_SA = 20, conf/asa/default.yaml),
plain SA (same K and iterations) and PSO (conf/baselines.yaml `pso`), where L* is SCIP's certified
optimum. Every gap uses the float64 latency of the returned decision
(ojrs_jax.system.exact.latency_np), not the search's own float32 value. Then the per-instance ASA
time, single and vmapped over 256 instances, against the paper's 0.2354 s (Table II). Prints figures
and writes them, with the command, machine, date, commit and load, to a record
(benchmarks/record.py); asserts nothing about time.

    python benchmarks/bench_asa.py [--draws 200] [--k 128] [--timing-only] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.search.asa import asa_from_mapping, asa_search, plain_sa
from ojrs_jax.search.baselines import greedy
from ojrs_jax.search.pso import pso, pso_from_mapping
from ojrs_jax.system.exact import exact_miqp, latency_np
from ojrs_jax.system.p2 import costs_latency, option_costs
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

CONF = Path(__file__).resolve().parents[1] / "conf"
PAPER_ASA_SECONDS = 0.2354


def scenario(m: int):
    system = OmegaConf.to_container(OmegaConf.load(CONF / "system" / "default.yaml"))
    scale = OmegaConf.to_container(OmegaConf.load(CONF / "scale" / f"paper_m{m}.yaml"))
    return make_scenario(SystemConfig.from_mapping({**system, **scale}))


def best_time(fn, *args, reps: int) -> float:
    """Minimum wall time of `reps` calls (after one warm-up call that compiles)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--k", type=int, default=None, help="K neighbours (default: conf/asa)")
    ap.add_argument("--t-sa", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--timing-only", action="store_true", help="skip the gap table (no SCIP, SA or PSO)"
    )
    add_out_argument(ap, "bench_asa")
    args = ap.parse_args()
    rec = Recording()

    asa_map = OmegaConf.to_container(OmegaConf.load(CONF / "asa" / "default.yaml"))
    if args.k is not None:
        asa_map["k"] = args.k
    asa_cfg, params = asa_from_mapping(asa_map)
    pso_cfg, pso_par = pso_from_mapping(
        OmegaConf.to_container(OmegaConf.load(CONF / "baselines.yaml"))["pso"]
    )
    k, t_sa, d = asa_cfg.k, args.t_sa, args.draws
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; draws={d}, N=30, "
        f"ASA: K={k}, T_SA={t_sa}, t0={params.t0}, phi_c={params.phi_c}, "
        f"mut_scale={params.mut_scale}, local_weight={params.local_weight}; "
        f"PSO: {pso_cfg.n_particles} particles x {pso_cfg.n_iter} iterations"
    )
    print(
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} (--xla_cpu_experimental_ynn_fusion_type= "
        "disables jaxlib 0.10.2's CPU YNNPACK fusion,\n  which is slower here and miscompiles some "
        "large reductions)"
    )
    print()
    figures: dict = {
        "n_ue": 30,
        "draws": None if args.timing_only else d,
        "asa": {
            "k": k,
            "t_sa": t_sa,
            "t0": params.t0,
            "phi_c": params.phi_c,
            "mut_scale": params.mut_scale,
            "local_weight": params.local_weight,
        },
        "pso": {"particles": pso_cfg.n_particles, "iterations": pso_cfg.n_iter},
        "paper_asa_s": PAPER_ASA_SECONDS,
        "gaps": [],
    }
    if not args.timing_only:
        gap_table(args, figures, asa_cfg, params, pso_cfg, pso_par)
    timing(figures, asa_cfg, params, pso_cfg, pso_par, t_sa)
    rec.write(args.out, figures)


def gap_table(args, figures, asa_cfg, params, pso_cfg, pso_par) -> None:
    """Mean gap to the certified optimum of Greedy, ASA, SA and PSO at M = 1..5 (printed)."""
    k, t_sa, d = asa_cfg.k, args.t_sa, args.draws
    head = (
        f"{'M':>2} {'greedy':>9} {'ASA':>9} {'ASA max':>9} {'ASA =opt':>9} {'SA':>9} "
        f"{'PSO':>9} {'PSO =opt':>9} {'SCIP ms':>8}"
    )
    print("mean gap to the exact optimum, % (=opt: share of draws within 1e-6 of L*)")
    print(head)
    print("-" * len(head))
    key = jax.random.key(args.seed)
    for m in range(1, 6):
        scn = scenario(m)
        key, k_h, k_asa, k_sa, k_pso = jax.random.split(key, 5)
        H = sample_channels(k_h, scn, d)
        a0 = greedy(scn)

        @jax.jit
        def searches(k_asa, k_sa, k_pso, H, scn=scn, a0=a0):
            one_asa = functools.partial(asa_search, k=k, max_iter=asa_cfg.max_iter)
            asa = jax.vmap(lambda kk, h: one_asa(kk, scn, h, a0, t_sa, params)[0])
            sa = jax.vmap(lambda kk, h: plain_sa(kk, scn, h, a0, t_sa, params, k=k)[0])
            ps = jax.vmap(
                lambda kk, h: pso(
                    kk, scn, h, a0, pso_par, n_particles=pso_cfg.n_particles, n_iter=pso_cfg.n_iter
                )[0]
            )
            return (
                asa(jax.random.split(k_asa, d), H),
                sa(jax.random.split(k_sa, d), H),
                ps(jax.random.split(k_pso, d), H),
            )

        dec = dict(
            zip(("asa", "sa", "pso"), map(np.asarray, searches(k_asa, k_sa, k_pso, H)), strict=True)
        )
        Hn = np.asarray(H)
        res = [exact_miqp(scn, Hn[e], 60.0, np.asarray(a0)) for e in range(d)]
        assert all(r.status == "optimal" for r in res), "SCIP did not certify every draw"
        lx = np.array([r.latency for r in res])
        gap = {"greedy": np.array([latency_np(scn, Hn[e], np.asarray(a0)) for e in range(d)]) / lx}
        for name, a in dec.items():
            gap[name] = np.array([latency_np(scn, Hn[e], a[e]) for e in range(d)]) / lx
        gap = {n: g - 1 for n, g in gap.items()}
        assert min(g.min() for g in gap.values()) > -1e-6, "a heuristic beat the certified optimum"
        pct = {n: 100 * g.mean() for n, g in gap.items()}
        print(
            f"{m:>2} {pct['greedy']:>9.3f} {pct['asa']:>9.4f} {100 * gap['asa'].max():>9.3f} "
            f"{np.mean(gap['asa'] < 1e-6):>9.2f} {pct['sa']:>9.4f} {pct['pso']:>9.4f} "
            f"{np.mean(gap['pso'] < 1e-6):>9.2f} "
            f"{1e3 * np.mean([r.seconds for r in res]):>8.1f}"
        )
        figures["gaps"].append(
            {
                "m": m,
                "mean_gap_pct": pct,
                "asa_max_gap_pct": 100 * float(gap["asa"].max()),
                "asa_share_optimal": float(np.mean(gap["asa"] < 1e-6)),
                "pso_share_optimal": float(np.mean(gap["pso"] < 1e-6)),
                "scip_ms_per_draw": 1e3 * float(np.mean([r.seconds for r in res])),
            }
        )


def timing(figures, asa_cfg, params, pso_cfg, pso_par, t_sa: int) -> None:
    """ASA time per instance, one call and vmapped over 256, and PSO one call (printed)."""
    k = asa_cfg.k
    print()
    print(
        f"ASA time per instance (N=30, M=2, K={k}, T_SA={t_sa}, from Greedy, incl. P2 of every "
        f"neighbour); paper Table II: {PAPER_ASA_SECONDS} s"
    )
    scn = scenario(2)
    a0 = greedy(scn)
    H = sample_channels(jax.random.key(1), scn, 256)
    keys = jax.random.split(jax.random.key(2), 256)
    single = jax.jit(
        lambda kk, h: asa_search(kk, scn, h, a0, t_sa, params, k=k, max_iter=asa_cfg.max_iter)[:2]
    )
    batched = jax.jit(jax.vmap(single))
    t1 = np.median([best_time(single, keys[i], H[i], reps=5) for i in range(20)])
    tb = best_time(batched, keys, H, reps=5)
    print(
        f"  single instance (jit, one call): {1e3 * t1:8.3f} ms  "
        f"({PAPER_ASA_SECONDS / t1:,.0f}x faster than the paper)"
    )
    print(
        f"  vmapped over 256 instances     : {1e3 * tb / 256:8.3f} ms per instance "
        f"({1e3 * tb:.1f} ms per batch; {PAPER_ASA_SECONDS / (tb / 256):,.0f}x)"
    )
    # The floor of the search: the same T_SA rounds of K cost evaluations (P2 closed form from
    # the per-option table), on candidates drawn beforehand, with no mutation, acceptance or RNG.
    cands = jax.random.randint(jax.random.key(3), (256, t_sa, k, scn.n_ue), 0, scn.n_mec + 1)

    def bare_one(h, c):
        tab = option_costs(scn, h)
        best, _ = jax.lax.scan(
            lambda b, ck: (jnp.minimum(b, costs_latency(tab, ck).min()), None), jnp.inf, c
        )
        return best

    bare = jax.jit(bare_one)
    bare_batched = jax.jit(jax.vmap(bare_one))
    b1 = np.median([best_time(bare, H[i], cands[i], reps=5) for i in range(20)])
    bb = best_time(bare_batched, H, cands, reps=5)
    print(
        f"  bare cost evaluations ({t_sa} x {k}): {1e3 * b1:8.3f} ms one call, "
        f"{1e3 * bb / 256:.3f} ms per instance vmapped; search / bare = {t1 / b1:.2f} and "
        f"{tb / bb:.2f}"
    )
    pso_single = jax.jit(
        lambda kk, h: pso(
            kk, scn, h, a0, pso_par, n_particles=pso_cfg.n_particles, n_iter=pso_cfg.n_iter
        )[:2]
    )
    tp = np.median([best_time(pso_single, keys[i], H[i], reps=3) for i in range(5)])
    print(f"  PSO single instance            : {1e3 * tp:8.3f} ms")
    figures["timing"] = {
        "m": 2,
        "from": "greedy",
        "single_ms": 1e3 * float(t1),
        "single_note": "median over 20 instances of the best of 5 calls each",
        "vmapped": 256,
        "vmapped_ms_per_instance": 1e3 * tb / 256,
        "vmapped_ms_per_batch": 1e3 * tb,
        "speedup_vs_paper_single": PAPER_ASA_SECONDS / float(t1),
        "speedup_vs_paper_vmapped": PAPER_ASA_SECONDS / (tb / 256),
        "pso_single_ms": 1e3 * float(tp),
        "bare_costs_single_ms": 1e3 * float(b1),
        "bare_costs_vmapped_ms_per_instance": 1e3 * bb / 256,
        "search_over_bare_single": float(t1 / b1),
        "search_over_bare_vmapped": float(tb / bb),
        "bare_note": "T_SA rounds of K closed-form cost evaluations on pre-drawn candidates",
    }


if __name__ == "__main__":
    main()
