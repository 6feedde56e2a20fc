"""One point (N, M) of the scale sweep, meant to run in a fresh process (benchmarks/run_all.py
starts one per point, so `ru_maxrss` is that point's peak memory).

    python benchmarks/bench_scale.py --n-ue 1000 --mecs 20 [--epochs 1000] [--draws 3]
        [--time-limit 20] [--batch B] [--preset large] [--out FILE.json]

Deployment: conf/system/default.yaml, grid layout, area 500 m * sqrt(N / 1000) (the UE density
of conf/scale/large.yaml at every N). Policy: the train preset `--preset` (conf/train/NAME.yaml,
default `large`) trained from scratch for `--epochs` epochs of Algorithm 3 (no SAE pretraining:
the preset's policy reads the channel, not the SAE code), with ASA's mutation scale set to
min(0.1, 5 / N) (about five UE moves per neighbour; the preset's value is the N = 1000 one).
Prints one JSON object:
- train: compile time of the jitted chunk (lowered and compiled once; XLA's memory_analysis of
  that executable: argument, output and temp bytes), then ms per epoch of the run;
- decide: the trained pipeline (policy argmax and P2 closed-form latency), one call and `--batch`
  channels per call (median wall time);
- nrr: on `--draws` held-out channels, L(exact) / L(decision) for the policy (no search), for ASA
  (conf/asa/default.yaml: K = 128, T_SA = 20) started from Greedy, for ASA with the same settings
  started from the policy's decision, and for Greedy and all-local; only draws that SCIP proves
  optimal within `--time-limit` s count, and how many did is reported;
- peak_rss_mb: the peak resident memory of this process (VmHWM of /proc/self/status, at the
  end and after training). Not ru_maxrss: Linux carries the parent's peak across fork and exec
  into it, so under run_all every point would report run_all's own peak.
The same object is written, with the command, machine, date, commit and load, to a record
(benchmarks/record.py; default benchmarks/results/bench_scale.json; run_all gives each point its
own file and reads it back).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_p2 import timeit  # noqa: E402
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.run.build import build  # noqa: E402
from ojrs_jax.sae import model as sae_mod  # noqa: E402
from ojrs_jax.search.asa import asa_from_mapping, asa_search  # noqa: E402
from ojrs_jax.search.baselines import greedy  # noqa: E402
from ojrs_jax.system.deployment import Problem, from_scenario  # noqa: E402
from ojrs_jax.system.exact import exact_miqp, latency_np  # noqa: E402
from ojrs_jax.system.p2 import batched_latency, latency  # noqa: E402
from ojrs_jax.system.scenario import sample_channels  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def peak_rss_mb() -> float:
    """Peak resident set size of this process's address space, MB (VmHWM; ru_maxrss if absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(*parts: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF.joinpath(*parts)))


def preset_config(name: str) -> dict:
    """The groups a train preset sets: conf/train/NAME.yaml over its `defaults` (a plain reader
    of this repository's presets: `paper`, `tuned` and the global `large`)."""
    raw = load("train", f"{name}.yaml")
    out: dict = {"train": {}, "asa": {}, "sae": {}}
    for d in raw.pop("defaults", []):
        if d == "_self_":
            continue
        base = d.split("@")[0].removeprefix("/train/")
        for k, v in preset_config(base).items():
            out.setdefault(k, {}).update(v)
    if "train" in raw or "asa" in raw or "sae" in raw:  # a global preset
        for k, v in raw.items():
            out.setdefault(k, {}).update(v)
    else:
        out["train"].update(raw)
    return out


def point_config(n: int, m: int, epochs: int, preset: str) -> dict:
    """Config of one sweep point (see the module docstring)."""
    p = preset_config(preset)
    asa = {**load("asa", "default.yaml"), **p["asa"], "mut_scale": min(0.1, 5.0 / n)}
    area = 500.0 * math.sqrt(n / 1000)
    return {
        "system": {
            **load("system", "default.yaml"),
            "n_ue": n,
            "n_mec": m,
            "layout": "grid",
            "area": area,
            "seed": 2,
        },
        "sae": {**load("sae", "2r_sae.yaml"), **p["sae"]},
        "asa": asa,
        "replay": load("replay", "per.yaml"),
        "train": {**p["train"], "epochs": epochs, "chunk": epochs, "change_epoch": 0},
        "seed": 0,
    }


def run_point(
    n: int, m: int, epochs: int, draws: int, time_limit: float, batch: int, preset: str
) -> dict:
    t_start = time.perf_counter()
    cfg = point_config(n, m, epochs, preset)
    spec = build(cfg)
    scn, env = spec.scn, spec.env_params()
    n_in = n * m
    st0 = spec.trainer.init(
        jax.random.key(1), sae_mod.init_sae(jax.random.key(0), spec.sae_cfg, n_in)
    )
    out: dict = {
        "n_ue": n,
        "n_mec": m,
        "area_m": cfg["system"]["area"],
        "preset": preset,
        "asa_mut_scale": cfg["asa"]["mut_scale"],
        "epochs": epochs,
    }
    # --- training: one compile (timed, memory analysed), then the run -----------------------
    t0 = time.perf_counter()
    compiled = spec.trainer.run_chunk.lower(st0, env).compile()
    t_compile = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    t0 = time.perf_counter()
    st, met = jax.block_until_ready(compiled(st0, env))
    t_run = time.perf_counter() - t0
    out["train"] = {
        "peak_rss_after_training_mb": peak_rss_mb(),
        "compile_s": t_compile,
        "run_s": t_run,
        "ms_per_epoch": t_run / epochs * 1e3,
        "xla_argument_mb": mem.argument_size_in_bytes / 2**20 if mem else None,
        "xla_output_mb": mem.output_size_in_bytes / 2**20 if mem else None,
        "xla_temp_mb": mem.temp_size_in_bytes / 2**20 if mem else None,
        "mean_latency_policy_last_10pct": float(np.mean(met["latency"][-max(1, epochs // 10) :])),
        "mean_latency_search_last_10pct": float(
            np.mean(met["latency_search"][-max(1, epochs // 10) :])
        ),
    }

    # --- decisions of the trained pipeline ------------------------------------------------------
    dep = from_scenario(scn)

    @jax.jit
    def pipe(h):
        hb = h[None] if h.ndim == 2 else h  # decide takes a batch of channels
        a = spec.trainer.decide(st.policy, st.sae.online, env, Problem(dep=dep, h=hb))
        a = a[0] if h.ndim == 2 else a
        return a, (latency(scn, h, a) if h.ndim == 2 else batched_latency(scn, h, a))

    H = sample_channels(jax.random.key(7), scn, batch)
    h0 = H[0]
    t1 = timeit(lambda: jax.block_until_ready(pipe(h0)), 1.0)
    tb = timeit(lambda: jax.block_until_ready(pipe(H)), 2.0, max_reps=20)
    out["decide"] = {
        "single_us": t1 * 1e6,
        "batch": batch,
        "batched_us_per_decision": tb / batch * 1e6,
        "batched_decisions_per_s": batch / tb,
    }
    # --- NRR against SCIP on held-out draws --------------------------------------------------
    asa_cfg, asa_par = asa_from_mapping(load("asa", "default.yaml"))
    Hd = sample_channels(jax.random.key(8), scn, draws)
    a_pol = spec.trainer.decide(st.policy, st.sae.online, env, Problem(dep=dep, h=Hd))
    a0 = greedy(scn)
    search = jax.jit(
        jax.vmap(
            lambda k, h, a: asa_search(
                k, scn, h, a, asa_cfg.t_sa0, asa_par, k=asa_cfg.k, max_iter=asa_cfg.max_iter
            )[0]
        )
    )
    keys = jax.random.split(jax.random.key(9), draws)
    a_asa = search(keys, Hd, jnp.broadcast_to(a0, (draws, n)))
    a_asa_pol = search(keys, Hd, a_pol)
    H_np = np.asarray(Hd, np.float64)
    decisions = {
        "policy": np.asarray(a_pol),
        "asa_from_greedy": np.asarray(a_asa),
        "asa_from_policy": np.asarray(a_asa_pol),
        "greedy": np.broadcast_to(np.asarray(a0), (draws, n)),
        "all_local": np.zeros((draws, n), np.int32),
    }
    ratios: dict[str, list[float]] = {k: [] for k in decisions}
    statuses, secs = [], []
    for e in range(draws):
        best = min(decisions, key=lambda k: latency_np(scn, H_np[e], decisions[k][e]))
        r = exact_miqp(scn, H_np[e], time_limit, decisions[best][e])
        statuses.append(r.status)
        secs.append(r.seconds)
        if r.status != "optimal":
            continue
        for k, a in decisions.items():
            ratios[k].append(r.latency / latency_np(scn, H_np[e], a[e]))
    certified = sum(s == "optimal" for s in statuses)
    out["nrr"] = {
        "draws": draws,
        "certified": certified,
        "scip_time_limit_s": time_limit,
        "scip_mean_s": float(np.mean(secs)),
        "statuses": sorted(set(statuses)),
        **{k: (float(np.mean(v)) if v else None) for k, v in ratios.items()},
        "policy_min": float(np.min(ratios["policy"])) if certified else None,
        "asa_settings": f"K={asa_cfg.k}, T_SA={asa_cfg.t_sa0}, mut_scale={asa_par.mut_scale}",
    }
    out["peak_rss_mb"] = peak_rss_mb()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["wall_s"] = time.perf_counter() - t_start
    out["load"] = os.getloadavg()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-ue", type=int, required=True)
    ap.add_argument("--mecs", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=20.0, help="SCIP seconds per draw")
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="default: 4096 N M <= 1024, "
        "else 2^22 / (N M) rounded down to a power of two, at least 256",
    )
    ap.add_argument("--preset", default="large")
    add_out_argument(ap, "bench_scale")
    a = ap.parse_args()
    rec = Recording()
    if a.batch is None:
        a.batch = max(256, min(4096, 2 ** int(math.log2(2**22 // (a.n_ue * a.mecs)))))
    res = run_point(a.n_ue, a.mecs, a.epochs, a.draws, a.time_limit, a.batch, a.preset)
    print(json.dumps(res))
    rec.write(a.out, res)


if __name__ == "__main__":
    main()
