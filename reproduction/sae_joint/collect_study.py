"""Write study.md from joint_m*_s*.json (joint_study.py): each code's three accuracy figures and
the NRR of a policy fitted offline on ASA labels from it (the offline ceiling of that code).

    python reproduction/sae_joint/collect_study.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def records(kind: str) -> list[tuple[int, dict]]:
    """(M, record) of every <kind>_m<M>_s2.json here, by M."""
    files = sorted(HERE.glob(f"{kind}_m*_s2.json"))
    return [(int(f.stem.split("_")[1][1:]), json.loads(f.read_text())) for f in files]


NAMES = {
    "frozen": "pretrained by eq. 23 (reconstruction only, frozen)",
    "joint_w1": "fitted offline with the policy, eq. 25 + 1 x eq. 23",
    "joint_w0.1": "fitted offline with the policy, eq. 25 + 0.1 x eq. 23",
    "joint_w0.01": "fitted offline with the policy, eq. 25 + 0.01 x eq. 23",
    "joint_w0.001": "fitted offline with the policy, eq. 25 + 0.001 x eq. 23",
    "joint_w0.01_scratch": "fitted offline with the policy from a random SAE, eq. 25 + 0.01 x "
    "eq. 23",
}
lines = [
    "# The code learned for the decision: offline study (N = 30, deployment seed 2)\n",
    "Written by collect_study.py from joint_m*_s2.json (reproduction/sae_joint/joint_study.py). "
    "Per-UE 2r-SAE codes of one number per UE (CR = 1 - 1/M), linear input; 5000 training and "
    "2000 held-out channels; ASA labels on 4000 training channels; WAPE Acc and the paper-style "
    "Acc (and skill against the training mean) on the 2000 held-out channels; decision fidelity "
    "(the SCIP optimum on the reconstruction, judged on h) and the NRR of the policy (the per-UE "
    "network, fitted offline on the code by eq. 25 for the row's Adam steps) on the first 200 "
    "held-out draws, all certified optimal. `run:` rows are the encoder a `train=sae_joint` run "
    "learned online (its own policy's NRR on these 200 draws beside the offline fit). The record's "
    "row names the code variant, the encoder's hidden widths where not [32], and the offline Adam "
    "steps (s3000: 3000). The SAE is pretrained to the plateau, at most 6000 steps (3000 in the "
    "h64x64_s6000 rows, as `train=sae_joint`).\n",
    "| M | code (row of the record) | WAPE Acc | paper Acc (skill) | fidelity NRR | offline "
    "NRR (p10) | run's policy NRR |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]
for m, res in records("joint"):
    for key, rows in res.items():
        if key == "a_opt":
            continue
        if "offline_nrr" in rows:  # the uncompressed channel
            nrr = f"{rows['offline_nrr']:.4f} ({rows['offline_nrr_p10']:.3f})"
            lines.append(f"| {m} | the channel itself, no code (`{key}`) | - | - | - | {nrr} | - |")
            continue
        for name, r in rows.items():
            label = NAMES.get(name, name.replace("run:", "learned online by run "))
            paper = r.get("paper")
            pa = f"{paper['acc']:.3f} ({paper['skill']:.2f})" if paper else "-"
            run = f"{r['run_policy_nrr']:.4f}" if "run_policy_nrr" in r else "-"
            lines.append(
                f"| {m} | {label} (`{key}`) | {r['wape_acc']:.3f} | {pa} | "
                f"{r['fidelity_nrr']:.4f} | {r['offline_nrr']:.4f} ({r['offline_nrr_p10']:.3f}) "
                f"| {run} |"
            )
lines += [
    "",
    "## The encoder's shape, its initialisation, labels and steps (encoder_study.py)\n",
    "Written from encoder_m*_s2.json (reproduction/sae_joint/encoder_study.py): the code fitted "
    "offline with the policy (eq. 25 + 0.001 x eq. 23, batch 256, step size 1e-3) from an SAE "
    "pretrained by eq. 23 (batch 512, step size 3e-3), one number per UE, on the same 200 "
    "certified held-out draws as the table above. Variants: `base` the per-UE encoder "
    "M-64-64-1 of `train=sae_joint`; `id16` encoder and decoder also read a 16-wide learned "
    "embedding of the UE's identity; `ctx32` the encoder also reads a 32-wide mean over all UEs "
    "of a per-UE feature (each UE's number can depend on the whole channel matrix); `lin` the "
    "code layer is linear (no ELU on the code); `log` the encoder reads [x, ln x] of the UE's "
    "row; `ff6` the policy reads the code through 6 Fourier pairs [z, sin(pi 2^k z), "
    "cos(pi 2^k z)], k < 6; `regret<B>` the loss also holds B x the policy's expected "
    "regret (each UE's deviation from its label weighed by the relative latency it costs). "
    "Distilled on N: the code and its policy fitted to the option probabilities of a teacher "
    "(the per-UE policy reading the channel, fitted to the labels; its own NRR beside) on N "
    "fresh channels instead of the labels.\n",
    "| M | variant | SAE init | eq. 23 pretraining steps | labels | distilled on (teacher NRR) "
    "| offline steps | WAPE Acc | offline NRR (p10) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
]
for m, res in records("encoder"):
    for r in res.values():
        dist = f"{r['distill']} ({r['teacher_nrr']:.4f})" if r.get("distill") else "-"
        lines.append(
            f"| {m} | {r['variant']} | {r.get('init', 0)} | {r['pretrain_steps']} | "
            f"{r['labels']} | {dist} | {r['steps']} | {r['wape_acc']:.3f} | "
            f"{r['offline_nrr']:.4f} ({r['offline_nrr_p10']:.3f}) |"
        )
(HERE / "study.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
