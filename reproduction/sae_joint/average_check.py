"""Does the Polyak average of the parameters decide better than the last ones, along a run?

`train=sae_joint` at scale paper_m<M> run one block (10 epochs) per jitted call; after every
block the averages of the parameters with decays 0.9, 0.97, 0.99, 0.995 per round are updated on
the host (from the initial parameters, as `train.average` does in the scan). Every 250 epochs
the mean latency (s) of the last parameters' and of each average's decisions (no search) on
1000 held-out draws of the run's evaluation key.

    python reproduction/sae_joint/average_check.py 4 3000 [SEED]

Writes reproduction/sae_joint/average_check_m<M>_s<SEED>.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from ojrs_jax.app.compose import compose_config
from ojrs_jax.run.build import build, initial_sae
from ojrs_jax.run.evaluation import held_out
from ojrs_jax.system.deployment import problem_latency

HERE = Path(__file__).parent
DECAYS = (0.9, 0.97, 0.99, 0.995)


def main() -> None:
    m, epochs = int(sys.argv[1]), int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    over = ["train=sae_joint", f"scale=paper_m{m}", f"train.epochs={epochs}", "train.chunk=10"]
    spec = build(compose_config([*over, f"seed={seed}"]))
    keys, params = spec.keys(), spec.env_params()
    sae_params, _ = initial_sae(keys["sae"], spec)
    tr = spec.trainer
    st = tr.init(keys["train"], sae_params, params)
    probs = held_out(tr.env, keys["eval"], params, 1000, 0)
    avgs = {d: st.policy for d in DECAYS}
    upd = jax.jit(lambda e, p, d: jax.tree.map(lambda a, b: d * a + (1 - d) * b, e, p))

    @jax.jit
    def latency(theta):
        a = tr.decide(theta, None, params, probs)
        return jnp.mean(jax.vmap(lambda h, x: problem_latency(probs.replace(h=h), x))(probs.h, a))

    rows, t0 = [], time.time()
    for b in range(epochs // spec.train_cfg.phi):
        st, _ = tr.run_chunk(st, params)
        avgs = {d: upd(avgs[d], st.policy, d) for d in DECAYS}
        if (b + 1) % 25 == 0:
            r = {"epoch": int(st.epoch), "last": float(latency(st.policy))}
            r |= {str(d): float(latency(avgs[d])) for d in DECAYS}
            rows.append(r)
            print(r, round(time.time() - t0), flush=True)
    (HERE / f"average_check_m{m}_s{seed}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
