"""Short accelerator benchmark of OJRS: figures printed as JSON and written to a record.

Needs only jax, flax, optax and chex (no Hydra, SCIP or jaxopt), so it runs on a bare GPU or TPU
image with `PYTHONPATH=src python benchmarks/gpu_bench.py [--small] [--out FILE.json]`. The
record (benchmarks/record.py; default benchmarks/results/gpu_bench.json) holds the figures with
the command, machine, device, date, commit and load. It measures
- Algorithm 3 training: time per epoch at N = 30, M = 2 for 1 seed and for S vmapped seeds;
- the trained pipeline's decisions (encoder, policy, P2): one call and batched throughput;
- ASA per instance, single and vmapped;
- the large deployment N = 1000, M = 20: time per epoch and per decision.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# The CPU workaround flag of ojrs_jax/__init__ is unknown to other jaxlib builds: leave XLA alone
# unless this is the CPU backend of the pinned series.
os.environ.setdefault("OJRS_KEEP_XLA_FLAGS", "1")

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.agent.agents import make_agent  # noqa: E402
from ojrs_jax.agent.config import TrainConfig  # noqa: E402
from ojrs_jax.agent.trainer import make_env, make_trainer  # noqa: E402
from ojrs_jax.env.fixed import FixedDeployment  # noqa: E402
from ojrs_jax.sae import model as sae_mod  # noqa: E402
from ojrs_jax.search.asa import ASAParams, asa_search  # noqa: E402
from ojrs_jax.search.baselines import greedy  # noqa: E402
from ojrs_jax.system.deployment import Problem, from_scenario  # noqa: E402
from ojrs_jax.system.p2 import solve_p2_closed_form  # noqa: E402
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels  # noqa: E402


def timed(fn, *args, repeats: int = 3) -> tuple[float, float]:
    """(first call incl. compile, best of `repeats` later calls) in seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return first, best


def bench_scale(
    n: int,
    m: int,
    layout: str,
    area: float,
    epochs: int,
    seeds: int,
    batch: int,
    hidden,
    sae_hidden: tuple[int, ...] = (),
) -> dict:
    scn = make_scenario(SystemConfig(n_ue=n, n_mec=m, layout=layout, area=area, noise=2e-7, seed=2))
    scfg = sae_mod.SAEConfig(steps=100, hidden=sae_hidden)
    cfg = TrainConfig(epochs=epochs, chunk=epochs, change_epoch=0, hidden=hidden)
    fixed = FixedDeployment(scn)
    tr = make_trainer(cfg, fixed, make_agent(cfg, scfg, fixed), scfg)
    env = make_env(jax.random.key(1), scn, cfg, scfg)
    sae_p = sae_mod.init_sae(jax.random.key(0), scfg, n * m)
    out = {"n_ue": n, "n_mec": m, "epochs": epochs}
    first, best = timed(tr.train, jax.random.key(2), env, sae_p, repeats=1)
    out.update(train_compile_and_run_s=first, train_s=best, ms_per_epoch=best / epochs * 1e3)
    keys = jax.random.split(jax.random.key(3), seeds)
    vtrain = jax.jit(jax.vmap(tr.train, (0, None, None)))
    first, best = timed(vtrain, keys, env, sae_p, repeats=1)
    out.update(seeds=seeds, vmapped_ms_per_seed_epoch=best / epochs / seeds * 1e3)
    st = tr.init(jax.random.key(4), sae_p, env)
    dep = from_scenario(scn)

    @jax.jit
    def decide(h):
        hb = h[None] if h.ndim == 2 else h  # decide takes a batch of channels
        a = tr.decide(st.policy, st.sae.online, env, Problem(dep=dep, h=hb))
        a = a[0] if h.ndim == 2 else a
        f = solve_p2_closed_form if h.ndim == 2 else jax.vmap(solve_p2_closed_form, (None, 0, 0))
        return f(scn, h, a).latency

    H = sample_channels(jax.random.key(5), scn, batch)
    _, one = timed(decide, H[0], repeats=20)
    _, many = timed(decide, H, repeats=5)
    out.update(decide_single_us=one * 1e6, decide_batched_per_s=batch / many, decide_batch=batch)
    asa = jax.jit(
        lambda k, h: asa_search(k, scn, h, greedy(scn), 20, ASAParams(), k=128, max_iter=100)[1]
    )
    vasa = jax.jit(
        jax.vmap(
            lambda k, h: asa_search(k, scn, h, greedy(scn), 20, ASAParams(), k=128, max_iter=100)[1]
        )
    )
    _, a1 = timed(asa, jax.random.key(6), H[0], repeats=5)
    nb = min(batch, 256)
    _, av = timed(vasa, jax.random.split(jax.random.key(7), nb), H[:nb], repeats=3)
    out.update(asa_single_ms=a1 * 1e3, asa_vmapped_ms_per_instance=av / nb * 1e3, asa_batch=nb)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="tiny sizes, to check the script on CPU")
    ap.add_argument("--large-epochs", type=int, default=200)
    ap.add_argument("--large-batch", type=int, default=4096)
    add_out_argument(ap, "gpu_bench")
    args = ap.parse_args()
    rec = Recording()
    res = {
        "device": str(jax.devices()[0]),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
    }
    if args.small:
        res["paper"] = bench_scale(30, 2, "paper", 50.0, 200, 2, 256, (120, 80))
    else:
        res["paper"] = bench_scale(30, 2, "paper", 50.0, 2000, 64, 65536, (120, 80))
    if not args.small or args.large_epochs < 200:
        res["large"] = bench_scale(
            1000,
            20,
            "grid",
            500.0,
            args.large_epochs,
            4 if not args.small else 2,
            args.large_batch,
            "auto",
            sae_hidden=(1024,),
        )
    print(json.dumps(res, indent=1))
    rec.write(args.out, res)


if __name__ == "__main__":
    main()
