"""Write runs.md: every kept `ojrs-train` run of the code learned for the decision (runs/*/),
its effective settings from config.yaml and its certified NRR from summary.json.

    python reproduction/sae_joint/collect_runs.py
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

HERE = Path(__file__).parent
COLUMNS = (
    "run | M | seed | code weight | encoder hidden | SAE init | SAE steps | warm start | "
    "Adam steps per round | ASA T_SA(0) | epochs | SAE WAPE Acc | warm start s | DRL s | "
    "other overrides | NRR mean (median, p10) | worst draw NRR | mean latency / exact | certified"
)
# overrides a column already shows, or that change no result (train.chunk; sae.layers, which
# sae.hidden sets), by their key
SHOWN = (
    "train.chunk",
    "sae.layers",
    "train",
    "scale",
    "seed",
    "train.code_weight",
    "sae.hidden",
    "sae.restarts",
    "sae.steps",
    "sae.max_steps",
    "train.warm_start",
    "train.updates",
    "asa.t_sa0",
    "train.epochs",
)


def other_overrides(d: Path) -> str:
    """The run's command-line overrides that no column shows, or "-"."""
    path = d / "overrides.yaml"
    over = yaml.safe_load(path.read_text()) if path.exists() else []
    rest = [o for o in over or [] if o.split("=", 1)[0] not in SHOWN]
    return ", ".join(f"`{o}`" for o in rest) or "-"


HEAD = f"| {COLUMNS} |\n|" + " --- |" * len(COLUMNS.split(" | ")) + "\n"


def row(d: Path) -> tuple[tuple, str]:
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    s = json.loads((d / "summary.json").read_text())
    t, sae, e = cfg["train"], cfg["sae"], s["eval"]
    init = f"{sae['restarts']} init" if sae["steps"] > 1 else "untrained (1 step)"
    cells = [
        d.name,
        cfg["scale"]["n_mec"],
        cfg.get("seed", 0),
        t.get("code_weight", 0.0),
        sae["hidden"],
        init,
        s["sae"]["steps"],
        t.get("warm_start", 0),
        t["updates"],
        cfg["asa"]["t_sa0"],
        t["epochs"],
        f"{s['sae']['acc']:.3f}",
        f"{s['warm_start_seconds']:.0f}" if "warm_start_seconds" in s else "-",
        f"{s['train_seconds']:.0f}",
        other_overrides(d),
        f"{e['nrr_policy']:.4f} ({e['nrr_policy_median']:.3f}, {e['nrr_policy_p10']:.3f})",
        f"{e['nrr_policy_min']:.3f}",
        f"{e['latency_policy'] / e['latency_exact']:.3f}",
        f"{e['certified']} / {e['draws']}",
    ]
    return (cfg["scale"]["n_mec"], d.name), "| " + " | ".join(map(str, cells)) + " |"


rows = sorted(row(d) for d in (HERE / "runs").iterdir() if (d / "summary.json").exists())
text = (
    "# The code learned for the decision: `ojrs-train` runs (N = 30, deployment seed 2)\n\n"
    "Written by collect_runs.py from runs/*/ (config.yaml, overrides.yaml and summary.json of "
    "each run; run directories not kept). Every NRR is the policy's own decision from the code "
    "(no search, no best-response pass) against the SCIP optimum on the run's held-out draws. "
    "Warm start: Adam steps fitting policy and SAE to ASA labels before DRL (train.warm_start; "
    "warm start s where the summary times it apart, else it is inside DRL s). A run of 10 "
    "epochs measures the warm-started policy itself. Worst draw NRR: the lowest NRR of one draw "
    "(exact latency over the policy's); mean latency / exact: the policy's mean latency over the "
    "optimum's on the same draws, which one catastrophic draw lifts while the NRR, a mean of "
    "ratios, barely moves.\n\n" + HEAD + "\n".join(r for _, r in rows) + "\n"
)
(HERE / "runs.md").write_text(text)
print(text)
