"""JAX vs plain NumPy on this machine: decision pipeline, ASA and Algorithm 3 per epoch.

    python benchmarks/bench_numpy_ratio.py [--quick] [--out FILE.json]

N = 30, M = 2, paper settings. The NumPy references (benchmarks/numpy_ref.py) are first checked
against the JAX code (same decisions on 256 channels, same ASA mean latency over 50 draws, same
policy gradient), then both are timed side by side in this run (median wall time). Prints a JSON
dict and writes it, with the command, machine, date, commit and load, to a record
(benchmarks/record.py; default benchmarks/results/bench_numpy_ratio.json; cpu_ratios.json is an
earlier run's output, written before the records). Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_ref as ref  # noqa: E402
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.agent.policy import policy_loss  # noqa: E402
from ojrs_jax.run.build import build  # noqa: E402
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod  # noqa: E402
from ojrs_jax.search.asa import asa_search  # noqa: E402
from ojrs_jax.search.baselines import greedy  # noqa: E402
from ojrs_jax.system.deployment import Problem, from_scenario  # noqa: E402
from ojrs_jax.system.p2 import batched_latency, latency  # noqa: E402
from ojrs_jax.system.scenario import sample_channels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def load(*parts: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF.joinpath(*parts)))


def paper_cfg(replay: str = "per", **train) -> dict:
    return {
        "system": {**load("system", "default.yaml"), **load("scale", "paper_m2.yaml")},
        "sae": load("sae", "2r_sae.yaml"),
        "asa": load("asa", "default.yaml"),
        "replay": load("replay", f"{replay}.yaml") if replay == "per" else {"kind": replay},
        "train": {**load("train", "paper.yaml"), **train},
        "seed": 0,
    }


def timeit(fn, budget: float, min_reps: int = 3, max_reps: int = 1000) -> float:
    """Median wall time of repeated calls within about `budget` seconds (after one warm-up)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (len(times) < max_reps and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def machine() -> str:
    """The host in one line (architecture, CPU count, load average over the last minute)."""
    return f"{platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}"


def fresh_state(spec):
    """An untrained TrainState of `spec` (policy and SAE at their initial weights)."""
    sae_params = sae_mod.init_sae(jax.random.key(0), spec.sae_cfg, spec.scn.n_ue * spec.scn.n_mec)
    return spec.trainer.init(jax.random.key(1), sae_params)


def numpy_weights(st) -> tuple[list, list]:
    """(encoder layers, policy layers) of a TrainState as NumPy (kernel, bias) lists."""
    return ref.dense_list(st.sae.online, "enc"), ref.dense_list(st.policy["params"], "Dense")


def decide_ratio(spec, st, budget: float, batch: int = 4096) -> dict:
    """Decision pipeline (encode, policy argmax, P2 latency) of the weights in `st`, JAX vs NumPy:
    agreement on 256 channels, then one call and `batch` calls, median wall time."""
    scn, env = spec.scn, spec.env_params()
    sc = ref.scenario_np(scn)
    gbar = float(jnp.mean(env.stats.scale))
    enc, pol = numpy_weights(st)
    dep = from_scenario(scn)

    @jax.jit
    def pipe(h):
        hb = h[None] if h.ndim == 2 else h  # decide takes a batch of channels
        a = spec.trainer.decide(st.policy, st.sae.online, env, Problem(dep=dep, h=hb))
        a = a[0] if h.ndim == 2 else a
        return a, (latency(scn, h, a) if h.ndim == 2 else batched_latency(scn, h, a))

    H = sample_channels(jax.random.key(2), scn, batch)
    H_np = np.asarray(H, np.float64)
    a_j, l_j = pipe(H[:256])
    a_n, l_n = ref.decide(sc, enc, pol, gbar, H_np[:256])
    same = np.all(np.asarray(a_j) == a_n, axis=1)
    out = {
        "agreement_ue": float(np.mean(np.asarray(a_j) == a_n)),
        "agreement_channel": float(np.mean(same)),
        "latency_max_rel_diff": float(
            np.max(np.abs(np.asarray(l_j, np.float64)[same] / l_n[same] - 1), initial=0.0)
        ),
    }
    h0, h0_np = H[0], H_np[0]
    tj1 = timeit(lambda: jax.block_until_ready(pipe(h0)), budget)
    tn1 = timeit(lambda: ref.decide(sc, enc, pol, gbar, h0_np), budget)
    tjb = timeit(lambda: jax.block_until_ready(pipe(H)), budget)
    tnb = timeit(lambda: ref.decide(sc, enc, pol, gbar, H_np), budget)
    out.update(
        jax_single_us=tj1 * 1e6,
        numpy_single_us=tn1 * 1e6,
        ratio_single_numpy_over_jax=tn1 / tj1,
        batch=batch,
        jax_batched_us_per_decision=tjb / batch * 1e6,
        jax_batched_decisions_per_s=batch / tjb,
        numpy_batched_us_per_decision=tnb / batch * 1e6,
        ratio_batched_numpy_over_jax=tnb / tjb,
    )
    return out


def asa_ratio(spec, budget: float, draws: int = 50, vbatch: int = 256) -> dict:
    """ASA from Greedy (T_SA = asa.t_sa0): same mean latency as the NumPy ASA over `draws`
    draws, then one instance and `vbatch` vmapped instances against NumPy one at a time."""
    scn = spec.scn
    sc = ref.scenario_np(scn)
    n = scn.n_ue
    asa_cfg, asa_par = spec.train_cfg.asa, spec.train_cfg.asa_params
    k, t_sa = asa_cfg.k, asa_cfg.t_sa0
    search = jax.jit(functools.partial(asa_search, k=k, max_iter=asa_cfg.max_iter))
    a0 = greedy(scn)
    a0_np = np.asarray(a0, np.int64)
    vsearch = jax.jit(
        jax.vmap(
            lambda key, h: asa_search(
                key, scn, h, a0, t_sa, asa_par, k=k, max_iter=asa_cfg.max_iter
            ),
        )
    )
    H = sample_channels(jax.random.key(2), scn, max(draws, vbatch))
    H_np = np.asarray(H, np.float64)
    h0, h0_np = H[0], H_np[0]
    keys = jax.random.split(jax.random.key(3), vbatch)
    a_bj, _, _ = vsearch(keys[:draws], H[:draws])
    rng = np.random.default_rng(0)
    l_jax = ref.latency(sc, H_np[:draws], np.asarray(a_bj, np.int64))
    p = asa_par
    l_np = np.array(
        [
            ref.asa(rng, sc, H_np[e], a0_np, t_sa, k, p.t0, p.phi_c, p.mut_scale, p.local_weight)[1]
            for e in range(draws)
        ]
    )
    l_greedy = ref.latency(sc, H_np[:draws], np.broadcast_to(a0_np, (draws, n)))
    tj1 = timeit(lambda: jax.block_until_ready(search(keys[0], scn, h0, a0, t_sa, asa_par)), budget)
    tjv = timeit(lambda: jax.block_until_ready(vsearch(keys, H[:vbatch])), budget)
    tn1 = timeit(lambda: ref.asa(rng, sc, h0_np, a0_np, t_sa, k), budget, max_reps=200)
    return {
        "k": k,
        "t_sa": t_sa,
        "draws": draws,
        "mean_latency_greedy": float(l_greedy.mean()),
        "mean_latency_jax": float(l_jax.mean()),
        "mean_latency_numpy": float(l_np.mean()),
        "jax_single_ms": tj1 * 1e3,
        "vmapped": vbatch,
        "jax_vmapped_ms_per_instance": tjv / vbatch * 1e3,
        "numpy_single_ms": tn1 * 1e3,
        "ratio_single_numpy_over_jax": tn1 / tj1,
        "ratio_numpy_over_jax_vmapped": tn1 / (tjv / vbatch),
    }


def grad_check(spec, st) -> dict:
    """The hand-written NumPy backprop of eq. 25 against jax.grad on one batch of 128."""
    env = spec.env_params()
    H = sample_channels(jax.random.key(4), spec.scn, 128)
    s_b = np.asarray(
        sae_mod.encode(st.sae.online, spec.sae_cfg, channel_map.preprocess(H, env.stats))
    )
    problems = Problem(dep=from_scenario(spec.scn), h=H)
    a_b = np.asarray(spec.trainer.decide(st.policy, st.sae.online, env, problems), np.int64)
    lam = spec.train_cfg.lam
    g_j = jax.grad(
        lambda p: policy_loss(spec.trainer.net, p, jnp.asarray(s_b), jnp.asarray(a_b), lam)
    )(st.policy)["params"]
    pol = numpy_weights(st)[1]
    _, g_n = ref.PolicyTrainer(pol, lam=lam).loss_grad(s_b.astype(np.float32), a_b)
    g_jl = [np.asarray(g_j[f"Dense_{i}"][w]) for i in range(len(pol)) for w in ("kernel", "bias")]
    return {
        "grad_max_abs_diff": float(
            max(np.max(np.abs(a - b)) for a, b in zip(g_jl, g_n, strict=True))
        ),
        "grad_max_abs": float(max(np.max(np.abs(a)) for a in g_jl)),
    }


def jax_epoch_time(epochs: int, reps: int, **train) -> tuple[float, float]:
    """Median seconds per epoch of run_chunk over `epochs` paper-scale epochs (after compiling)
    and the mean T_SA used; `train` overrides conf/train/paper.yaml."""
    sp = build(paper_cfg(epochs=epochs, chunk=epochs, **train))
    e = sp.env_params()
    s0 = fresh_state(sp)
    run = sp.trainer.run_chunk
    _, met = jax.block_until_ready(run(s0, e))  # compile
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(run(s0, e))
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) / epochs, float(np.mean(met["t_sa"]))


def train_ratio(spec, epochs: int, reps: int) -> dict:
    """Algorithm 3 per epoch over `epochs` epochs: JAX at paper settings and at the NumPy loop's
    coverage (uniform replay, no incremental SAE) against the NumPy loop, same initial weights."""
    st = fresh_state(spec)
    sc = ref.scenario_np(spec.scn)
    gbar = float(jnp.mean(spec.env_params().stats.scale))
    enc, pol = numpy_weights(st)
    asa_cfg = spec.train_cfg.asa
    tj_paper, tsa_paper = jax_epoch_time(epochs, reps)
    tj_match, tsa_match = jax_epoch_time(epochs, reps, replay="uniform", incremental_sae=False)
    t0 = time.perf_counter()
    res = ref.train_loop(
        np.random.default_rng(1),
        sc,
        enc,
        pol,
        gbar,
        epochs=epochs,
        k=asa_cfg.k,
        t_sa0=asa_cfg.t_sa0,
    )
    tn = (time.perf_counter() - t0) / epochs
    return {
        "epochs": epochs,
        "numpy_covers": (
            "per epoch: channel draw, encode (fixed SAE), policy forward, ASA (adaptive T_SA, "
            "K=128), uniform FIFO buffer add; every 10 epochs one Adam step of the policy with "
            "hand-written NumPy backprop (2 ReLU layers + softmax CE + L2) and eq. 30. "
            "Not covered: incremental SAE learning (Alg. 1) and 2p-ER prioritised replay."
        ),
        "jax_paper_ms_per_epoch": tj_paper * 1e3,
        "jax_paper_mean_t_sa": tsa_paper,
        "jax_matched_ms_per_epoch": tj_match * 1e3,
        "jax_matched_mean_t_sa": tsa_match,
        "jax_matched": "uniform FIFO replay, no incremental SAE: the NumPy loop's coverage",
        "numpy_ms_per_epoch": tn * 1e3,
        "ratio_numpy_over_jax_paper": tn / tj_paper,
        "ratio_numpy_over_jax_matched": tn / tj_match,
        "numpy_latency_search_mean": res["latency_search_mean"],
        "numpy_mean_t_sa": res["t_sa_mean"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter timings and training runs")
    add_out_argument(ap, "bench_numpy_ratio")
    args = ap.parse_args()
    rec = Recording()
    budget = 1.0 if args.quick else 3.0
    epochs = 50 if args.quick else 200
    spec = build(paper_cfg(epochs=epochs, chunk=epochs))
    st = fresh_state(spec)
    enc, pol = numpy_weights(st)
    out: dict = {
        "n_ue": spec.scn.n_ue,
        "n_mec": spec.scn.n_mec,
        "quick": args.quick,
        "encoder_widths": [w.shape[1] for w, _ in enc],
        "policy_widths": [w.shape[1] for w, _ in pol],
    }
    out["decide"] = decide_ratio(spec, st, budget)
    print(json.dumps({"decide": out["decide"]}), file=sys.stderr)
    out["asa"] = asa_ratio(spec, budget)
    print(json.dumps({"asa": out["asa"]}), file=sys.stderr)
    out["train"] = {**grad_check(spec, st), **train_ratio(spec, epochs, 2 if args.quick else 3)}
    print(json.dumps(out, indent=1))
    rec.write(args.out, out)


if __name__ == "__main__":
    main()
