import json
import pathlib

runs = [
    ("M=2", "sae.preprocess=log", 1, "on", "/tmp/drl_sae_pue1_log", "a"),
    (
        "M=2",
        "sae.preprocess=log train.incremental_sae=false",
        1,
        "off",
        "/tmp/drl_m2_log_noinc",
        "a",
    ),
    ("M=2", "sae.preprocess=log train.epochs=3000", 1, "on", "/tmp/drl_m2_log_3000", "a"),
    ("M=2", "sae.preprocess=linear", 1, "on", "/tmp/drl_m2_sae_pue1_lin", "a"),
    (
        "M=2",
        "sae.preprocess=linear train.incremental_sae=false",
        1,
        "off",
        "/tmp/drl_m2_lin_noinc",
        "a",
    ),
    (
        "M=2",
        "sae.preprocess=linear train.incremental_sae=false train.epochs=3000",
        1,
        "off",
        "/tmp/drl_m2_lin_noinc_3000",
        "a",
    ),  # = the final preset (sae.plateau_decays=0)
    ("M=2", "sae.preprocess=linear train.epochs=3000", 1, "on", "/tmp/drl_m2_lin_inc_3000", "b"),
    (
        "M=2",
        "sae.preprocess=linear sae.retrain_learning_rate=0.00012 train.epochs=3000",
        1,
        "on (step 1.2e-4)",
        "/tmp/drl_m2_lin_inc_slow_3000",
        "b",
    ),
    ("M=5", "scale=paper_m5 sae.preprocess=log", 1, "on", "/tmp/drl_m5_sae_pue1_log", "a"),
    ("M=5", "scale=paper_m5 sae.preprocess=linear", 1, "on", "/tmp/drl_m5_sae_pue1_lin", "a"),
    (
        "M=5",
        "scale=paper_m5 sae.preprocess=log sae.per_ue_code=2",
        2,
        "on",
        "/tmp/drl_m5_log_k2",
        "a",
    ),
    (
        "M=5",
        "scale=paper_m5 sae.preprocess=linear sae.per_ue_code=2 train.incremental_sae=false"
        " train.epochs=3000",
        2,
        "off",
        "/tmp/drl_m5_lin_k2_noinc_3000",
        "b",
    ),
]
rows = [
    "| M | `ojrs-train train=sae_state sae.variant=sae sae.hidden=[32] sae.max_steps=6000"
    " eval.channels=300` plus (first version of the preset: log input, incremental SAE on, 1500"
    " epochs) | k | CR | incremental SAE | SAE WAPE (steps) | epochs | DRL s"
    " | NRR mean / median / p10 |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
]
for m, o, k, inc, d, rule in runs:
    p = pathlib.Path(d) / "summary.json"
    if not p.exists():
        rows.append(
            f"| {m[2:]} | `{o}` | {k} | {1 - 30 * k / (30 * int(m[2:])):.1f} | {inc} "
            "| - | - | - | not finished |"
        )
        continue
    s = json.loads(p.read_text())
    e = s["eval"]
    if "nrr_policy" in e:  # a run of this version: the policy's NRR under its own names
        e = {x: e[f"nrr_policy{x[3:]}"] for x in ("nrr", "nrr_median", "nrr_p10")}
    steps = s["sae"].get("steps", "?")
    cuts = "" if rule == "b" else ", no cuts"
    rows.append(
        f"| {m[2:]} | `{o}` | {k} | {s['sae']['cr']:.1f} | {inc} | {s['sae']['acc']:.3f} "
        f"({steps}{cuts}) | {s['epochs']} | {s['train_seconds']:.0f} | "
        f"{e['nrr']:.4f} / {e['nrr_median']:.4f} / {e['nrr_p10']:.4f} |"
    )
print("\n".join(rows))
