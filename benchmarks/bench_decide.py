"""Decision time of a trained OJRS pipeline (encoder, policy, P2 closed form): one call, batched.

    python benchmarks/bench_decide.py RUN_DIR [--batch 4096] [--repeats 200] [--out FILE.json]

Prints microseconds per decision for a single jitted call and for batched calls, and the
throughput; the paper's figure is 17.4 ms per OJRS decision at N = 30 (Table II). Writes the
figures, with the run's network settings, the command, machine, date, commit and load, to a
record (benchmarks/record.py). The times depend on the network's shape, not on how long it was
trained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.checkpoint import load_model
from ojrs_jax.p2 import solve_p2_closed_form
from ojrs_jax.pipeline import build
from ojrs_jax.sae import init_sae
from ojrs_jax.scenario import load_scenario, sample_channels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=200)
    add_out_argument(ap, "bench_decide")
    args = ap.parse_args()
    rec = Recording()
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    spec = build(cfg)
    scn = load_scenario(args.run / "scenario.json")
    env = spec.env().replace(scn=scn)
    n_in = scn.n_ue * scn.n_mec
    st = spec.trainer.init(jax.random.key(0), init_sae(jax.random.key(0), spec.sae_cfg, n_in))
    model = load_model(args.run, {"policy": st.policy, "encoder": st.sae.online})

    @jax.jit
    def pipeline(h):
        a = spec.trainer.decide(model["policy"], model["encoder"], env, h)
        if h.ndim == 2:
            return a, solve_p2_closed_form(scn, h, a).latency
        return a, jax.vmap(solve_p2_closed_form, (None, 0, 0))(scn, h, a).latency

    H = sample_channels(jax.random.key(1), scn, args.batch)
    jax.block_until_ready(pipeline(H[0]))
    jax.block_until_ready(pipeline(H))
    t = []
    for r in range(args.repeats):
        h = H[r % args.batch]
        t0 = time.perf_counter()
        jax.block_until_ready(pipeline(h))
        t.append(time.perf_counter() - t0)
    single = float(np.median(t))
    tb = []
    for _ in range(max(3, args.repeats // 20)):
        t0 = time.perf_counter()
        jax.block_until_ready(pipeline(H))
        tb.append(time.perf_counter() - t0)
    batched = float(np.median(tb)) / args.batch
    out = {
        "device": str(jax.devices()[0]),
        "n_ue": scn.n_ue,
        "n_mec": scn.n_mec,
        "single_call_us": single * 1e6,
        "batched_us_per_decision": batched * 1e6,
        "batched_decisions_per_s": 1.0 / batched,
        "batch": args.batch,
        "paper_ms_per_decision": 17.4,
        "speedup_vs_paper_single": 17.4e-3 / single,
    }
    print(json.dumps(out, indent=1))
    summary = json.loads((args.run / "summary.json").read_text()) if (
        args.run / "summary.json").exists() else {}  # fmt: skip
    t = cfg.get("train", {})
    out["run"] = {
        "dir": str(args.run),
        "train": {k: t.get(k) for k in ("arch", "state", "hidden", "ue_embed", "epochs")},
        "epochs_trained": summary.get("epochs"),
    }
    rec.write(args.out, out)


if __name__ == "__main__":
    main()
