"""Training time per epoch of Algorithm 3 for the `train` presets, measured side by side.

    python benchmarks/bench_train.py [--presets main paper tuned] [--chunk 500] [--repeats 3]

For each preset (composed from the installed Hydra configs exactly as `ojrs-train train=NAME`
composes it, at N = 30, M = 2), compiles one jitted chunk of `--chunk` epochs, then times
`--repeats` further chunks and prints the median milliseconds per epoch, the compile time and
the ratio of each preset's epoch to `paper`'s. No SAE pretraining, evaluation or checkpoints:
the loop alone. Writes a record (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from hydra import compose, initialize_config_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.app.hydra import to_container
from ojrs_jax.run.build import build
from ojrs_jax.sae.model import init_sae


def epoch_ms(preset: str, chunk: int, repeats: int) -> dict:
    """Compile seconds and median ms per epoch of one preset's jitted training chunk."""
    with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
        cfg = to_container(compose("train", overrides=[f"train={preset}", f"train.chunk={chunk}"]))
    spec = build(cfg)
    env = spec.env_params()
    n_in = spec.scn.n_ue * spec.scn.n_mec
    state = spec.trainer.init(jax.random.key(0), init_sae(jax.random.key(1), spec.sae_cfg, n_in))
    epochs = spec.train_cfg.chunk_blocks * spec.train_cfg.phi
    t0 = time.perf_counter()
    compiled = spec.trainer.run_chunk.lower(state, env).compile()
    compile_s = time.perf_counter() - t0
    state, _ = compiled(state, env)  # warm-up chunk
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _ = compiled(state, env)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    t = spec.train_cfg
    return {
        "epochs_per_chunk": epochs,
        "compile_s": compile_s,
        "ms_per_epoch": 1e3 * float(np.median(times)) / epochs,
        "ms_per_epoch_min": 1e3 * float(np.min(times)) / epochs,
        "settings": {
            "arch": t.arch,
            "state": t.state,
            "updates": t.updates,
            "batch": t.batch,
            "buffer": t.buffer,
            "k": t.asa.k,
            "t_sa0": t.asa.t_sa0,
            "adaptive": t.adaptive,
            "epochs": t.epochs,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["main", "paper", "tuned"])
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    add_out_argument(ap, "bench_train")
    args = ap.parse_args()
    rec = Recording()
    figures: dict = {"n_ue": 30, "n_mec": 2, "presets": {}}
    for name in args.presets:
        r = epoch_ms(name, args.chunk, args.repeats)
        figures["presets"][name] = r
        print(
            f"train={name:<6} {r['ms_per_epoch']:7.2f} ms per epoch "
            f"(min {r['ms_per_epoch_min']:.2f}), compile {r['compile_s']:.1f} s, {r['settings']}"
        )
    if "paper" in figures["presets"]:
        base = figures["presets"]["paper"]["ms_per_epoch"]
        figures["ratio_to_paper"] = {
            n: r["ms_per_epoch"] / base for n, r in figures["presets"].items()
        }
        print(
            "per-epoch time / paper's:",
            {n: round(v, 2) for n, v in figures["ratio_to_paper"].items()},
        )
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
