"""`ojrs-sae`: train the 2r-SAE (eq. 23) on sampled channels; data of paper Figs. 3-6, Table III.

Trains the `sae` model and the `compare` variants on the same channels and reports held-out
reconstruction accuracy, CR, the best linear code and the three accuracy figures of
`ojrs_jax.sae.metrics` (WAPE over `deployment_seeds`, paper-style Acc beside the mean predictor,
decision fidelity on `fidelity_draws` certified draws); with `sae.max_steps` > 0 every model
trains to its plateau (`ojrs_jax.experiments.sae_study`). Writes
to the Hydra run directory: metrics.json, loss_curves.csv, table3.csv, errors.npz and
fig3_accuracy.png, fig4_loss.png, fig5_errors_2r_sae.png, fig6_errors_sae.png.

    ojrs-sae                                  # N = 30, M = 2: 2r-SAE vs AE and SAE, M = 1..5
    ojrs-sae scale=paper_m5 table_mecs=[]     # one scenario only
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ojrs_jax.app.hydra import hydra_cli
from ojrs_jax.experiments.sae_outputs import figures, write_outputs
from ojrs_jax.experiments.sae_study import LABELS, parse, run_sae


def format_summary(r: dict) -> str:
    n_seeds = r["run"]["model_seeds"]
    head = f"{'model':<8}{'Acc (mean +- std)':>20}{'per-UE Acc':>12}{'per-UE rel err':>16}"
    head += f"{'NMSE dB':>9}{'train Acc':>11}{'CR':>6}"
    lines = [f"held-out metrics, mean over {n_seeds} seeds", head, "-" * len(head)]
    for n, m in r["models"].items():
        t = m["test"]
        lines.append(
            f"{LABELS.get(n, n):<8}{t['acc']:>12.4f} +- {t['acc_std']:.4f}{t['per_ue_acc']:>12.4f}"
            f"{t['rel_err']:>16.4f}{t['nmse_db']:>9.2f}{m['train']['acc']:>11.4f}{r['cr']:>6.2f}"
        )
    b = r["pca_bound"]
    lines.append(
        f"{'PCA':<8}{b['acc']:>12.4f}{'':>10}{b['per_ue_acc']:>12.4f}   (best linear code)"
    )
    if r["figures"]:
        lines += [
            "",
            "the three accuracy figures (seed-0 model; docs/findings/sae.md)",
            f"{'model':<13}{'WAPE Acc':>9}{'paper Acc':>10}{'mean pred':>10}{'skill':>7}"
            f"{'fidelity NRR':>13}{'same option':>12}{'steps':>7}",
        ]
        for n, f in r["figures"].items():
            fid, nan = f.get("fidelity", {}), float("nan")
            steps = r["models"][n]["steps"] if n in r["models"] else ""
            lines.append(
                f"{LABELS.get(n, n):<13}{f['wape_acc']:>9.4f}{f['paper']['acc']:>10.4f}"
                f"{f['paper']['mean_acc']:>10.4f}{f['paper']['skill']:>7.3f}"
                f"{fid.get('nrr', nan):>13.4f}{fid.get('same_option', nan):>12.4f}"
                f"{steps:>7}"
            )
    if r["deployments"]:
        lines.append(f"WAPE Acc over deployment seeds {list(r['run']['deployment_seeds'])}:")
        for n, d in r["deployments"].items():
            lines.append(f"  {LABELS.get(n, n):<8}{d['mean']:.4f} +- {d['std']:.4f}")
    if r["table3"]:
        lines += ["", f"Table III ({LABELS.get(r['main'], r['main'])}): M, Acc, CR, PCA Acc"]
        for row in r["table3"]:
            lines.append(
                f"  M={row['n_mec']}  Acc {row['acc']:.4f} +- {row['acc_std']:.4f}"
                f"  CR {row['cr']:.2f}  PCA {row['pca_acc']:.4f}"
                f"  paper-style {row['paper_style_acc']:.4f}"
                f" (mean {row['paper_style_mean_acc']:.4f})"
                f"  fidelity {row['fidelity_nrr'] or float('nan'):.4f}"
            )
    if r["incremental"]:
        i = r["incremental"]
        lines.append(
            f"\nincremental (seed 0): {i['epochs']} epochs, {100 * i['admitted_fraction']:.1f}% "
            f"admitted, {i['syncs']} syncs, online Acc {i['acc_before']:.4f} -> "
            f"{i['acc_online_after']:.4f}"
        )
    return "\n".join(lines)


@hydra_cli("sae_train")
def main(cfg: DictConfig) -> None:
    r = run_sae(*parse(cfg))
    print(format_summary(r))
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    paths = write_outputs(r, out) + figures(r, out, r["run"]["hist_bins"])
    print(f"wrote {len(paths)} files to {out}")


if __name__ == "__main__":
    main()
