"""Timing of the any-deployment scheduler: Algorithm 3 over the `random` distribution and batched
decisions of the feature policy; meant for the GPU (ready to run), `--quick` for a CPU check.

    python benchmarks/bench_any.py [--n-max 300] [--m-max 20] [--epochs 2000] [--chunk 500]
        [--decide 300:10 1000:20] [--batch 1024] [--quick] [--out FILE.json]

train: the jitted chunk's compile time, then ms per epoch over the remaining chunks, for the
`random` deployment of conf/deployment/random.yaml with N in [5, n_max], M in [1, m_max],
the settings of `train=any` (conf/train/any.yaml: the feature policy) otherwise. decide: for
each N:M, `--batch` deployments of that size with one channel each, decided and allocated (P2
closed form) in one jitted call with the trained parameters: median wall time of 5 calls and
decisions/s. Writes a record (benchmarks/record.py).
On the GPU machine: `PYTHONPATH=src python benchmarks/bench_any.py --out
benchmarks/results/bench_any_h200.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.agent import feature_policy as fp  # noqa: E402
from ojrs_jax.agent.agents import make_agent  # noqa: E402
from ojrs_jax.agent.config import TrainConfig  # noqa: E402
from ojrs_jax.agent.trainer import make_trainer  # noqa: E402
from ojrs_jax.env.distribution import DeploymentDistribution  # noqa: E402
from ojrs_jax.sae.model import SAEConfig  # noqa: E402
from ojrs_jax.system.deployment import (  # noqa: E402
    DeploymentConfig,
    masked_allocation,
    random_deployment,
    rayleigh,
)
from ojrs_jax.system.scenario import SystemConfig  # noqa: E402

# conf/train/any.yaml (train=any): Algorithm 3 with the feature policy over a distribution
ANY = dict(
    phi=10,
    batch=64,
    updates=4,
    buffer=2048,
    learning_rate=1e-3,
    lam=1e-5,
    adaptive=False,
    change_epoch=0,
    incremental_sae=False,
    state="deployment",
    arch="feature",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-max", type=int, default=300)
    ap.add_argument("--m-max", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--decide", nargs="+", default=["300:10", "1000:20"])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--quick", action="store_true", help="CPU check: tiny sizes")
    add_out_argument(ap, "bench_any")
    args = ap.parse_args()
    if args.quick:
        args.n_max, args.m_max, args.epochs, args.chunk = 30, 5, 100, 50
        args.decide, args.batch = ["30:5"], 64
    rec = Recording()
    sys_cfg = SystemConfig(noise=2e-7)
    dcfg = DeploymentConfig(
        kind="random",
        n_ue=(5, args.n_max),
        n_max=args.n_max,
        n_mec=(1, args.m_max),
        m_max=args.m_max,
    )
    gcfg = TrainConfig(epochs=args.epochs, chunk=args.chunk, **ANY)
    env = DeploymentDistribution(dcfg, sys_cfg)
    tr = make_trainer(gcfg, env, make_agent(gcfg, SAEConfig(), env))
    params = env.default_params
    st = tr.init(jax.random.key(0), None, params)
    t0 = time.perf_counter()
    st, _ = jax.block_until_ready(tr.run_chunk(st, params))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rest = 0
    while int(st.epoch) < gcfg.n_blocks * gcfg.phi:
        st, m = jax.block_until_ready(tr.run_chunk(st, params))
        rest += gcfg.chunk_blocks * gcfg.phi
    per_epoch = (time.perf_counter() - t0) / max(rest, 1)
    train = {
        "n_max": args.n_max,
        "m_max": args.m_max,
        "epochs": args.epochs,
        "first_chunk_with_compile_s": first,
        "ms_per_epoch": 1e3 * per_epoch,
    }
    print(json.dumps({"train": train}), flush=True)
    decide = []
    for spec in args.decide:
        n, m = (int(x) for x in spec.split(":"))
        cell = replace(dcfg, n_ue=(n, n), n_max=n, n_mec=(m, m), m_max=m)

        @jax.jit
        def run(keys, params, cell=cell):
            def one(k):
                k_d, k_h = jax.random.split(k)
                dep = random_deployment(k_d, cell, sys_cfg)
                h = rayleigh(k_h, dep)
                return masked_allocation(dep, h, fp.act(tr.net, params, dep, h))["latency"]

            return jax.vmap(one)(keys)

        keys = jax.random.split(jax.random.key(1), args.batch)
        t0 = time.perf_counter()
        jax.block_until_ready(run(keys, st.policy))
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            jax.block_until_ready(run(keys, st.policy))
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        row = {
            "n_ue": n,
            "n_mec": m,
            "batch": args.batch,
            "compile_s": compile_s,
            "median_call_s": med,
            "decisions_per_s": args.batch / med,
        }
        decide.append(row)
        print(json.dumps(row), flush=True)
    rec.write(args.out, {"train": train, "decide": decide})


if __name__ == "__main__":
    main()
