"""A code learned for the decision: offline study of the SAE code trained jointly with the policy.

For one M and deployment seed (N = 30): pretrain the SAE by its own loss to the plateau, label
training channels with ASA, then fit the policy offline on the code in two ways and certify
each on held-out draws against the exact optimum:
- frozen: the policy on the pretrained code (the code of `train=sae_state` today);
- joint (weight w): encoder, decoder and policy fitted together by eq. 25 + w x the SAE's loss
  (eq. 23 for variant 2r_sae), from the pretrained SAE (`code_study.train_offline_joint`).
For each code it reports the three accuracy figures of `ojrs_jax.sae.metrics` (WAPE Acc, the
paper-style Acc with the mean predictor's and the skill, decision fidelity: the optimum on the
reconstruction judged on h), the per-UE relative error, and the offline NRR. Writes
reproduction/sae_joint/joint_m{M}_s{seed}.json.

    python reproduction/sae_joint/joint_study.py --m 3 --variant 2r_pue1_lin --weights 1 0.1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent.policy import PerUEPolicy, PolicyNet
from ojrs_jax.experiments import code_study
from ojrs_jax.run.rundir import load_trained
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import metrics as sae_metrics
from ojrs_jax.sae import model as sae
from ojrs_jax.system.certify import cases, certify, latency64
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.scenario import SystemConfig, make_scenario, path_gain, sample_channels

BASE = dict(learning_rate=3e-3, steps=500, max_steps=6000, plateau_tol=0.01, batch_size=512)
VARIANTS = {
    "2r_pue1_lin": dict(variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[32]),
    "sae_pue1_lin": dict(variant="sae", structure="per_ue", per_ue_code=1, hidden=[32]),
    "2r_pue1_log": dict(
        variant="2r_sae", structure="per_ue", per_ue_code=1, hidden=[32], preprocess="log"
    ),
    "2r_flat_lin": dict(variant="2r_sae"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2, help="deployment seed (UE positions)")
    ap.add_argument("--variant", default="2r_pue1_lin", choices=sorted(VARIANTS))
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--labels", type=int, default=4000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--channel-ceiling", action="store_true")
    ap.add_argument("--from-scratch", action="store_true")
    ap.add_argument("--hidden", type=int, nargs="*", default=None, help="encoder hidden widths")
    ap.add_argument("--runs", nargs="*", default=[], help="finished sae_joint run directories")
    ap.add_argument("--only-runs", action="store_true", help="score only the --runs codes")
    ap.add_argument("--max-steps", type=int, default=BASE["max_steps"], help="SAE pretraining")
    ap.add_argument("--out", default="reproduction/sae_joint")
    args = ap.parse_args()
    scn = make_scenario(SystemConfig(n_ue=30, n_mec=args.m, layout="paper", seed=args.seed))
    k_tr, k_te, k_lab, k_pol, k_sae = jax.random.split(jax.random.key(0), 5)
    h_tr = sample_channels(k_tr, scn, 5000)
    h_te = sample_channels(k_te, scn, 2000)
    out = Path(args.out) / f"joint_m{args.m}_s{args.seed}.json"
    res = json.loads(out.read_text()) if out.exists() else {}
    a_opt = np.asarray(res["a_opt"]) if len(res.get("a_opt", [])) >= args.draws else None
    variant = {**BASE, **VARIANTS[args.variant], "max_steps": args.max_steps}
    if args.hidden is not None:
        variant.update(hidden=args.hidden, layers=len(args.hidden) + 2)
    cfg = sae.SAEConfig(**variant)
    hidden = "x".join(map(str, cfg.hidden))
    key = f"{args.variant}{f'_h{hidden}' if args.hidden else ''}_s{args.steps}"  # the record's row
    t0 = time.perf_counter()
    if args.only_runs:
        fit = {"stats": channel_map.channel_stats(scn, cfg.preprocess)}
    else:
        fit = code_study.fit_autoencoder(k_sae, cfg, scn, h_tr, h_te)
    stats = fit["stats"]
    labels = code_study.asa_labels(k_lab, scn, h_tr[: args.labels])
    x_lab = channel_map.preprocess(h_tr[: args.labels], stats)
    x_te = channel_map.preprocess(h_te, stats)
    if cfg.structure == "per_ue":
        net = PerUEPolicy(n_ue=30, n_mec=args.m, hidden=(64, 64), embed=32, code_width=1)
    else:
        net = PolicyNet(n_ue=30, n_mec=args.m, hidden=(120, 80))
    h_d = np.asarray(h_te[: args.draws], np.float64)
    cs = cases(Problem(dep=from_scenario(scn), h=h_d))

    def score(name, params, pol, cfg=cfg, net=net, online=None):
        t = time.perf_counter()
        s = sae.encode(params, cfg, x_te)
        a = np.asarray(jnp.argmax(net.apply(pol, s[: args.draws]), -1))
        h_hat = channel_map.postprocess(sae.reconstruct(params, cfg, x_te), stats)
        nonlocal a_opt
        fid = sae_metrics.decision_fidelity(
            scn, h_te[: args.draws], h_hat[: args.draws], a_opt=a_opt
        )
        a_opt = fid.pop("a_opt")
        ref = (latency64(scn, h_d, a_opt), args.draws)
        pol_scores = certify(cs, {"policy": a}, reference=ref)
        row = {
            "wape_acc": float(channel_map.reconstruction_accuracy(h_te, h_hat)),
            "paper": sae_metrics.paper_accuracy(h_te, h_hat, h_tr),
            "rel_err": float(channel_map.per_ue_relative_error(h_te, h_hat)),
            "fidelity_nrr": fid["nrr"],
            "offline_nrr": pol_scores["nrr_policy"],
            "offline_nrr_p10": pol_scores["nrr_policy_p10"],
            "score_s": time.perf_counter() - t,
        }
        if online is not None:  # the run's own policy on its code, beside the offline fit
            a_run = np.asarray(jnp.argmax(net.apply(online, s[: args.draws]), -1))
            row["run_policy_nrr"] = certify(cs, {"policy": a_run}, reference=ref)["nrr_policy"]
        res.setdefault(key, {})[name] = row
        res["a_opt"] = np.asarray(a_opt).tolist()
        out.write_text(json.dumps(res, indent=1))
        print(key, name, json.dumps(row), flush=True)

    if not args.only_runs:
        pol = code_study.train_offline(
            k_pol, net, sae.encode(fit["params"], cfg, x_lab), labels, steps=args.steps
        )
        score("frozen", fit["params"], pol)
    if args.channel_ceiling:  # the same offline fit on the uncompressed channel x
        net_x = PerUEPolicy(n_ue=30, n_mec=args.m, hidden=(64, 64), embed=32)
        pol_x = code_study.train_offline(k_pol, net_x, x_lab, labels, steps=args.steps)
        a = np.asarray(jnp.argmax(net_x.apply(pol_x, x_te[: args.draws]), -1))
        ref = (latency64(scn, h_d, a_opt), args.draws)
        sc = certify(cs, {"policy": a}, reference=ref)
        row = {"offline_nrr": sc["nrr_policy"], "offline_nrr_p10": sc["nrr_policy_p10"]}
        res[f"channel_s{args.steps}"] = row
        out.write_text(json.dumps(res, indent=1))
        print("channel (no code)", json.dumps(row), flush=True)
    start = fit.get("params")
    if args.from_scratch:  # the joint fit from a random SAE, not the pretrained one
        start = sae.init_sae(jax.random.key(1), cfg, x_lab.shape[-1], args.m)
    tag = "_scratch" if args.from_scratch else ""
    for w in [] if args.only_runs else args.weights:
        pol, params = code_study.train_offline_joint(
            k_pol, net, cfg, start, x_lab, labels, stats, code_weight=w, steps=args.steps
        )
        score(f"joint_w{w:g}{tag}", params, pol)
    for d in args.runs:  # the code a DRL run learned: its encoder, an offline fit on its code
        run = load_trained(d)
        if run.scn is None or not np.allclose(path_gain(run.scn), path_gain(scn), rtol=1e-6):
            raise SystemExit(f"{d} was not trained on this deployment (M = {args.m}, seed 2)")
        rcfg = run.sae_cfg
        rnet = run.train_cfg.policy_net(30, args.m, rcfg)
        enc = jax.tree.map(jnp.asarray, run.encoder)
        pol = code_study.train_offline(
            k_pol, rnet, sae.encode(enc, rcfg, x_lab), labels, steps=args.steps
        )
        policy = jax.tree.map(jnp.asarray, run.policy)
        score(f"run:{Path(d).name}", enc, pol, cfg=rcfg, net=rnet, online=policy)
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
