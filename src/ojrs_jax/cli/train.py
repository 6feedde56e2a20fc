"""`ojrs-train`: run OJRS's DRL (Algorithm 3) and certify the policy against the optimum (Sec. V).

    ojrs-train                                  # main job: best scheduler, N = 30, M = 2
    ojrs-train train=paper                      # the paper's settings, T_DRL = 10000
    ojrs-train scale=paper_m5 train=paper train.epochs=2000 replay=uniform
    ojrs-train deployment=random train=any      # one policy for any deployment (ojrs-train-any)

Writes to the Hydra run directory: .hydra/ (Hydra's record, once the run holds the directory:
a refused start writes nothing), config.yaml, scenario.json (+ scenario_start.json; the fixed
deployment), checkpoint/ (state after each chunk; `resume=true` continues a killed run),
model.msgpack (for `ojrs-decide`), metrics.csv (one row per epoch), summary.json and the
figures reward.png, loss.png and t_sa.png (paper Figs. 8-10). Exit 3: training diverged
(non-finite loss or parameters). Exit 2: a bad setting or file, a run directory in use by
another process (its lock) or already holding a run, or an I/O error. Exit 130: interrupted.
`resume=true` on a finished run prints its saved summary and writes nothing.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ojrs_jax.app.hydra import hydra_cli, save_record, to_container
from ojrs_jax.run.train import parse, train_run


def format_summary(s: dict) -> str:
    e = s["eval"]
    sae = (
        f"SAE: held-out accuracy {s['sae']['acc']:.4f}, CR {s['sae']['cr']:.3f} "
        f"({s['sae']['seconds']:.1f} s)"
        if "acc" in s["sae"]
        else "SAE: not pretrained (the policy does not read its code)"
    )
    first = s["first_chunk_seconds_with_compile"]  # None: resumed with no chunk left to run
    lines = [
        sae,
        f"DRL: {s['epochs']} epochs in {s['train_seconds']:.1f} s (first chunk with compile "
        f"{'-' if first is None else f'{first:.1f}'} s), "
        f"reward stable after {s['epochs_to_stable']} epochs, final T_SA {s['final_t_sa']}",
        f"policy on {e['draws']} held-out problems ({s.get('task', 'the deployment')}): mean "
        f"latency {e['latency_policy']:.3f} s (greedy {e['latency_greedy']:.3f}, random "
        f"{e['latency_random']:.3f})",
    ]
    if "nrr_policy" in e:
        lines.append(
            f"exact optimum {e['latency_exact']:.3f} s ({e['certified']} of {e['draws']} "
            f"certified); NRR = L(exact)/L(policy): mean {e['nrr_policy']:.4f}, median "
            f"{e['nrr_policy_median']:.4f}, 10th percentile {e['nrr_policy_p10']:.4f}"
        )
    return "\n".join(lines)


def run(cfg: DictConfig) -> None:
    """The task of `ojrs-train` and `ojrs-train-any`: train, certify, print."""
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    try:
        spec, opts = parse(to_container(cfg))
        resume = bool(cfg.get("resume", False))
        record = functools.partial(save_record, cfg, keep=resume)
        summary = train_run(spec, opts, out, resume=resume, record=record)
    except FloatingPointError as e:  # training diverged; the last good checkpoint is kept
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    print(format_summary(summary))
    print(f"run directory: {out}")
    if not math.isfinite(summary["eval"]["latency_policy"]):
        sys.exit(3)


main = hydra_cli("train", own_record=True)(run)


if __name__ == "__main__":
    main()
