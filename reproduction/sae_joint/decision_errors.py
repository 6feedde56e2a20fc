"""Where the policy on the one-number code loses: its decisions beside the optimum, draw by draw.

For a finished `ojrs-train` run of one deployment: 300 fresh channel draws (key 77), the run's
own decision (no search) and SCIP's optimum of each; reported: the NRR, how many UEs' decisions
differ from the optimum (all draws, the worst tenth, the better half), the UEs on each option
against the optimum's, the load of the busiest MEC server, and each UE's error rate.

    python reproduction/sae_joint/decision_errors.py RUN_DIR NAME

Writes reproduction/sae_joint/decision_errors_<NAME>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

from ojrs_jax import load_run
from ojrs_jax.system.certify import latency64, nrr
from ojrs_jax.system.exact import exact_miqp
from ojrs_jax.system.scenario import sample_channels

HERE = Path(__file__).parent


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: decision_errors.py RUN_DIR NAME")
    sched = load_run(sys.argv[1])
    scn = sched.scn
    H = np.asarray(sample_channels(jax.random.key(77), scn, 300), np.float64)
    A = np.asarray(sched.decide(H))
    opt = [exact_miqp(scn, h) for h in H]
    A_opt = np.stack([r.a for r in opt])
    l_opt = np.array([r.latency for r in opt])
    l_pol = latency64(scn, H, A)
    ratio = l_opt / l_pol
    worst, better = ratio < np.quantile(ratio, 0.1), ratio > np.median(ratio)
    wrong = (A != A_opt).sum(axis=1)
    n_opt = scn.n_mec + 1
    load = np.stack([(A == j).sum(axis=1) for j in range(n_opt)], axis=1)
    load_opt = np.stack([(A_opt == j).sum(axis=1) for j in range(n_opt)], axis=1)
    out = {
        "run": sys.argv[1],
        "draws": len(H),
        "certified": int(sum(r.status == "optimal" for r in opt)),
        "nrr": float(nrr(l_opt, l_pol)),
        "nrr_p10": float(np.quantile(ratio, 0.1)),
        "ues_wrong_mean": float(wrong.mean()),
        "ues_wrong_worst_tenth": float(wrong[worst].mean()),
        "ues_wrong_better_half": float(wrong[better].mean()),
        "ues_per_option_policy": load.mean(axis=0).tolist(),
        "ues_per_option_optimum": load_opt.mean(axis=0).tolist(),
        "busiest_server_policy": float(load[:, 1:].max(axis=1).mean()),
        "busiest_server_optimum": float(load_opt[:, 1:].max(axis=1).mean()),
        "busiest_server_policy_worst_tenth": float(load[worst, 1:].max(axis=1).mean()),
        "busiest_server_optimum_worst_tenth": float(load_opt[worst, 1:].max(axis=1).mean()),
        "ue_error_rate": (A != A_opt).mean(axis=0).tolist(),
    }
    (HERE / f"decision_errors_{sys.argv[2]}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "ue_error_rate"}, indent=1))


if __name__ == "__main__":
    main()
