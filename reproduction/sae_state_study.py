"""Which SAE code can the policy read? Offline study at N = 30 (over experiments.code_study).

For each named code variant at one M and deployment seed: train the SAE to its plateau, report
the three accuracy figures (WAPE, paper-style Acc with the mean predictor and skill, decision
fidelity on certified draws), then fit the policy offline to ASA labels on the code and certify
its NRR on the same held-out draws. Writes reproduction/sae_state/study_m{M}_s{seed}.json.

    python reproduction/sae_state_study.py --m 2 --variants log_pue1 lin_pue1 --draws 200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from ojrs_jax.agent.policy import PerUEPolicy, PolicyNet
from ojrs_jax.experiments import code_study
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import metrics as sae_metrics
from ojrs_jax.sae import model as sae
from ojrs_jax.system.certify import cases, certify, latency64
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

BASE = dict(learning_rate=3e-3, steps=500, max_steps=6000, plateau_tol=0.01, batch_size=512)
VARIANTS = {
    # the paper's flat codes (30 numbers for all UEs)
    "ae_flat_lin": dict(variant="ae", layers=2),
    "sae_flat_lin": dict(variant="sae"),
    "2r_flat_lin": dict(variant="2r_sae"),
    "sae_flat_log": dict(variant="sae", preprocess="log"),
    "2r_flat_log": dict(variant="2r_sae", preprocess="log"),
    "sae_flat_minmax": dict(variant="sae", preprocess="minmax"),
    # one encoder shared by every UE's row of M gains, k numbers per UE
    "sae_pue1_lin": dict(variant="sae", structure="per_ue", per_ue_code=1, hidden=[32]),
    "sae_pue1_log": dict(
        variant="sae", structure="per_ue", per_ue_code=1, hidden=[32], preprocess="log"
    ),
    "sae_pue1_minmax": dict(
        variant="sae", structure="per_ue", per_ue_code=1, hidden=[32], preprocess="minmax"
    ),
    "2r_pue1_lin": dict(variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[32]),
    "2r_pue1_log": dict(
        variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[32], preprocess="log"
    ),
    "2r_pue1_minmax": dict(
        variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[32], preprocess="minmax"
    ),
    "sae_pue2_log": dict(
        variant="sae", structure="per_ue", per_ue_code=2, hidden=[32], preprocess="log"
    ),
    "2r_pue2_log": dict(
        variant="2r_sae", structure="per_ue", per_ue_code=2, hidden=[32], preprocess="log"
    ),
    "sae_pue2_lin": dict(variant="sae", structure="per_ue", per_ue_code=2, hidden=[32]),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2, help="deployment seed (UE positions)")
    ap.add_argument("--variants", nargs="+", default=["sae_pue1_log"])
    ap.add_argument("--draws", type=int, default=200, help="certified held-out draws")
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--no-policy", action="store_true")
    ap.add_argument("--out", default="reproduction/sae_state")
    args = ap.parse_args()
    scn = make_scenario(SystemConfig(n_ue=30, n_mec=args.m, layout="paper", seed=args.seed))
    k_tr, k_te, k_lab, k_pol, k_sae = jax.random.split(jax.random.key(0), 5)
    h_tr = sample_channels(k_tr, scn, args.train)
    h_te = sample_channels(k_te, scn, args.test)
    out = Path(args.out) / f"study_m{args.m}_s{args.seed}.json"
    res = json.loads(out.read_text()) if out.exists() else {}
    t0 = time.perf_counter()
    a_opt = np.asarray(res["a_opt"]) if "a_opt" in res else None
    labels = None
    for name in args.variants:
        cfg = sae.SAEConfig(**{**BASE, **VARIANTS[name]})
        t = time.perf_counter()
        fit = code_study.fit_autoencoder(k_sae, cfg, scn, h_tr, h_te)
        h_hat = np.asarray(fit["h_hat"])
        row = {
            "config": dataclasses.asdict(cfg),
            "steps": fit["steps"],
            "cr": sae.compression_ratio(30, args.m, cfg.state_width(30)),
            "wape_acc": float(channel_map.reconstruction_accuracy(h_te, h_hat)),
            "paper": sae_metrics.paper_accuracy(h_te, h_hat, h_tr),
            "loss_curve_every_100": [float(v) for v in fit["curves"]["test_loss"][::100]],
        }
        fid = sae_metrics.decision_fidelity(
            scn, h_te[: args.draws], h_hat[: args.draws], a_opt=a_opt
        )
        a_opt = fid.pop("a_opt")
        row["fidelity"] = fid
        if not args.no_policy:
            if labels is None:
                labels = code_study.asa_labels(k_lab, scn, h_tr[:4000])

            def enc(h, params=fit["params"], cfg=cfg, stats=fit["stats"]):
                return sae.encode(params, cfg, channel_map.preprocess(h, stats))

            if cfg.structure == "per_ue":
                net = PerUEPolicy(
                    n_ue=30, n_mec=args.m, hidden=(64, 64), embed=32, code_width=cfg.per_ue_code
                )
            else:
                net = PolicyNet(n_ue=30, n_mec=args.m, hidden=(120, 80))
            pol = code_study.train_offline(k_pol, net, enc(h_tr[:4000]), labels)
            a = jax.numpy.argmax(net.apply(pol, enc(h_te[: args.draws])), -1)
            h_d = np.asarray(h_te[: args.draws], np.float64)
            cs = cases(Problem(dep=from_scenario(scn), h=h_d))
            ref = (latency64(scn, h_d, a_opt), args.draws)
            scores = certify(cs, {"policy": np.asarray(a)}, reference=ref)
            row["offline_asa"] = {"nrr": scores["nrr_policy"], "nrr_p10": scores["nrr_policy_p10"]}
        row["seconds"] = time.perf_counter() - t
        res[name] = row
        print(
            name,
            json.dumps({k: row[k] for k in row if k not in ("config", "loss_curve_every_100")}),
            flush=True,
        )
        res["a_opt"] = np.asarray(a_opt).tolist()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
