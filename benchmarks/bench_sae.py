"""Wall time of one 2r-SAE training run of T_SAE Adam steps (Algorithm 1, eq. 23) per scenario.

Compilation is timed apart; the run time is the median of `--repeats` calls of the jitted
`train_sae` on fresh keys (same shapes, so no recompilation), after `block_until_ready`.

    python benchmarks/bench_sae.py                      # N = 30, M = 1..5, T_SAE = 500
    python benchmarks/bench_sae.py --mecs 2 --variant sae --steps 500 --repeats 10
    python benchmarks/bench_sae.py --n-ue 1000 --mecs 20 --layout grid --area 500

Prints a table and writes it, with the command, machine, date, commit and load, to a record
(benchmarks/record.py; `--out`, default benchmarks/results/bench_sae.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae  # noqa: E402
from ojrs_jax.sae import train as sae_train
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels  # noqa: E402


def bench(sys_cfg: SystemConfig, cfg: sae.SAEConfig, channels: int, repeats: int) -> dict:
    scn = make_scenario(sys_cfg)
    stats = channel_map.channel_stats(scn, cfg.preprocess)
    x = channel_map.preprocess(sample_channels(jax.random.key(0), scn, channels), stats)
    params = sae.init_sae(jax.random.key(1), cfg, x.shape[-1])
    t0 = time.perf_counter()
    jax.block_until_ready(sae_train.train_sae(jax.random.key(2), cfg, params, x, stats))
    first = time.perf_counter() - t0
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(sae_train.train_sae(jax.random.key(3 + r), cfg, params, x, stats))
        runs.append(time.perf_counter() - t0)
    run = statistics.median(runs)
    return {"first_call": first, "compile": first - run, "run": run, "per_step": run / cfg.steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-ue", type=int, default=30)
    ap.add_argument("--mecs", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--layout", default="paper")
    ap.add_argument("--area", type=float, default=50.0)
    ap.add_argument("--variant", default="2r_sae", choices=sae.VARIANTS)
    ap.add_argument("--steps", type=int, default=500, help="T_SAE")
    ap.add_argument("--batch-size", type=int, default=sae.SAEConfig().batch_size)
    ap.add_argument("--channels", type=int, default=5000, help="training set size")
    ap.add_argument("--repeats", type=int, default=5)
    add_out_argument(ap, "bench_sae")
    a = ap.parse_args()
    rec = Recording()
    cfg = sae.SAEConfig(variant=a.variant, steps=a.steps, batch_size=a.batch_size)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
    print(
        f"{cfg.variant}, T_SAE = {cfg.steps} Adam steps, batch {cfg.batch_size}, "
        f"{a.channels} training channels, median of {a.repeats} runs"
    )
    print(f"{'N':>5}{'M':>4}{'widths':>18}{'compile s':>11}{'T_SAE run s':>13}{'ms/step':>9}")
    figures = {
        "variant": cfg.variant,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "channels": a.channels,
        "repeats": a.repeats,
        "layout": a.layout,
        "area_m": a.area,
        "rows": [],
    }
    for m in a.mecs:
        sys_cfg = SystemConfig(n_ue=a.n_ue, n_mec=m, layout=a.layout, area=a.area, seed=2)
        r = bench(sys_cfg, cfg, a.channels, a.repeats)
        widths = "-".join(map(str, (a.n_ue * m, *sae.encoder_widths(cfg, a.n_ue * m))))
        print(
            f"{a.n_ue:>5}{m:>4}{widths:>18}{r['compile']:>11.2f}{r['run']:>13.3f}"
            f"{1e3 * r['per_step']:>9.3f}"
        )
        figures["rows"].append(
            {
                "n_ue": a.n_ue,
                "n_mec": m,
                "widths": widths,
                "compile_s": r["compile"],
                "run_s": r["run"],
                "ms_per_step": 1e3 * r["per_step"],
            }
        )
    rec.write(a.out, figures)


if __name__ == "__main__":
    main()
