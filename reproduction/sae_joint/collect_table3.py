"""Write table3_seeds.md: Table III of `train=sae_joint`, every training seed (table3_jobs/*.json,
the result.json of each `ojrs-reproduce` job; table3_distill*_jobs/*.json with train.distill),
against the certified optimum and the paper's row.

    python reproduction/sae_joint/collect_table3.py
"""

from __future__ import annotations

import json
from pathlib import Path

from ojrs_jax.experiments.results import PAPER_TABLE3  # M: (Acc, CR, F-Best, F-Avg, S-Best, S-Avg)

HERE = Path(__file__).parent
COLS = ("F-Best", "F-Avg", "S-Best", "S-Avg")
SECTIONS = (  # (folder of result.json files, what trained)
    ("table3_jobs", "`train=sae_joint`"),
    ("table3_distill_jobs", "`train=sae_joint train.distill=256`"),
    (
        "table3_distill_lr2_jobs",
        "`train=sae_joint train.distill=256 train.learning_rate=2e-3`",
    ),
    (
        "table3_distill_lr2_t2_jobs",
        "`train=sae_joint train.distill=256 train.learning_rate=2e-3 train.distill_temperature=2`",
    ),
    (
        "table3_distill_lr3_t2_jobs",
        "`train=sae_joint train.distill=256 train.learning_rate=3e-3 train.distill_temperature=2`",
    ),
)
folders = [f"{folder}/" for folder, _ in SECTIONS]
lines = [
    "# Table III with `train=sae_joint`, every training seed (N = 30, deployment seed 2)\n",
    f"Written by collect_table3.py from the *.json of {', '.join(folders[:-1])} and "
    f"{folders[-1]}. 10000 epochs, weight change at epoch 5000, NRR of the policy's own decision "
    "(no search) every 500 epochs on 1000 held-out draws, each certified optimal by SCIP (both "
    "weight sets); Best and Avg over the evaluation points before (F) and from (S) the change. "
    "Each cell: seeds 0, 1, 2 against the certified optimum (mean), then the paper's figure "
    "(against PSO).\n",
]
for folder, what in SECTIONS:
    jobs = [json.loads(p.read_text()) for p in sorted(HERE.glob(f"{folder}/*.json"))]
    if not jobs:
        continue
    lines += [
        f"## {what} ({folder}/)\n",
        "| M | CR | SAE WAPE Acc | " + " | ".join(COLS) + " | job s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(jobs, key=lambda r: r["n_mec"]):
        m, t = r["n_mec"], r["table3"]
        cells = []
        for i, c in enumerate(COLS):
            v = t[f"{c} vs exact"]
            seeds = ", ".join(f"{x:.4f}" for x in v["values"])
            cells.append(f"{seeds} ({v['mean']:.4f}); paper {PAPER_TABLE3[m][2 + i]:.4f}")
        cr = 1 - 1 / m
        lines.append(
            f"| {m} | {cr:.2f} | {r['sae']['acc']:.3f} | "
            + " | ".join(cells)
            + f" | {r['wall_seconds']:.0f} |"
        )
    lines.append("")
(HERE / "table3_seeds.md").write_text("\n".join(lines))
print("\n".join(lines))
