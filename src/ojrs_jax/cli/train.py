"""`ojrs-train`: pretrain the 2r-SAE, run OJRS's DRL (Algorithm 3) and evaluate it (paper Sec. V).

    ojrs-train                                  # main job: best scheduler, N = 30, M = 2
    ojrs-train train=paper                      # the paper's settings, T_DRL = 10000
    ojrs-train scale=paper_m5 train=paper train.epochs=2000 replay=uniform

Writes to the Hydra run directory: config.yaml, scenario.json (+ scenario_start.json),
checkpoint/ (state after each chunk; `resume=true` continues a killed run), model.msgpack (for
`ojrs-decide`), metrics.csv (one row per epoch), summary.json and the figures reward.png,
loss.png and t_sa.png (paper Figs. 8-10). Exit 3: training diverged (non-finite loss). Exit 2:
a bad setting or file, a run directory in use by another process (its lock), or an I/O error.
`resume=true` on a finished run prints its saved summary and writes nothing.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ojrs_jax.app.hydra import hydra_cli
from ojrs_jax.run.train import parse, train_run


def format_summary(s: dict) -> str:
    e = s["eval"]
    sae = (
        f"SAE: held-out accuracy {s['sae']['acc']:.4f}, CR {s['sae']['cr']:.3f} "
        f"({s['sae']['seconds']:.1f} s)"
        if "acc" in s["sae"]
        else "SAE: not pretrained (the policy reads the channel, train.state=channel)"
    )
    first = s["first_chunk_seconds_with_compile"]  # None: resumed with no chunk left to run
    lines = [
        sae,
        f"DRL: {s['epochs']} epochs in {s['train_seconds']:.1f} s (first chunk with compile "
        f"{'-' if first is None else f'{first:.1f}'} s), "
        f"reward stable after {s['epochs_to_stable']} epochs, final T_SA {s['final_t_sa']}",
        f"policy on {e['draws']} held-out channels: mean latency {e['latency_policy']:.3f} s "
        f"(greedy {e['latency_greedy']:.3f}, random {e['latency_random']:.3f})",
    ]
    if "nrr" in e:
        lines.append(
            f"exact optimum {e['latency_exact']:.3f} s; NRR = L(exact)/L(policy): mean "
            f"{e['nrr']:.4f}, median {e['nrr_median']:.4f}, 10th percentile {e['nrr_p10']:.4f}"
        )
    return "\n".join(lines)


@hydra_cli("train")
def main(cfg: DictConfig) -> None:
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    try:
        spec, opts = parse(cfg)
        summary = train_run(spec, opts, out, resume=bool(cfg.get("resume", False)))
    except FloatingPointError as e:  # training diverged; the last good checkpoint is kept
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    print(format_summary(summary))
    print(f"run directory: {out}")
    if not math.isfinite(summary["eval"]["latency_policy"]):
        sys.exit(3)


if __name__ == "__main__":
    main()
