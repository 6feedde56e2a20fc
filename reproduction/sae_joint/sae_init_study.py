"""How much does the SAE's initialisation move the online NRR of `train=sae_joint`, all else equal?

One `ojrs-train`-equivalent run per SAE initialisation: the same training, environment and
evaluation keys (those of seed 0), only the key of the SAE's pretraining differs (init 0 is the
run's own, so its row equals `ojrs-train train=sae_joint scale=paper_m<M>`; init r > 0 folds
1000 + r into it). Each run: the preset's SAE pretraining, 3000 epochs of DRL, the policy's own
decision on 1000 held-out draws certified against the SCIP optimum.

    python reproduction/sae_joint/sae_init_study.py 4 0,1,2,3,4

Appends one JSON line per initialisation to reproduction/sae_joint/sae_inits_m<M>.jsonl.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax

from ojrs_jax.app.compose import compose_config
from ojrs_jax.run.build import build, initial_sae
from ojrs_jax.run.evaluation import evaluate_run
from ojrs_jax.run.loop import run_chunks

HERE = Path(__file__).parent


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: sae_init_study.py M INITS (comma-separated) [overrides ...]")
    m, inits, extra = int(sys.argv[1]), [int(v) for v in sys.argv[2].split(",")], sys.argv[3:]
    spec = build(compose_config(["train=sae_joint", f"scale=paper_m{m}", *extra]))
    keys, params = spec.keys(), spec.env_params()
    total = spec.train_cfg.n_blocks * spec.train_cfg.phi
    chunk = spec.train_cfg.chunk_blocks * spec.train_cfg.phi
    for r in inits:
        t0 = time.time()
        k = keys["sae"] if r == 0 else jax.random.fold_in(keys["sae"], 1000 + r)
        sae, rep = initial_sae(k, spec)
        state = spec.trainer.init(keys["train"], sae, params)
        run = run_chunks(spec.trainer.run_chunk, state, params, total, chunk)
        ev = evaluate_run(spec.trainer, run.state, params, keys["eval"], 1000)
        row = {"m": m, "init": r, "extra": extra, "nrr": ev["nrr_policy"], "acc": rep.get("acc")}
        row["s"] = time.time() - t0
        print(row, flush=True)
        with open(HERE / f"sae_inits_m{m}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
