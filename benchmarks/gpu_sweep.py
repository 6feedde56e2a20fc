"""Accelerator timing of the reproduction's training jobs (figures printed and saved as JSON).

Times what one `ojrs-reproduce` job spends in Algorithm 3, from the same Hydra configs:
- a Table III job (`experiment=table3_m5`, `train=tuned`: N = 30, M = 5, T_DRL = 10000 with the
  weight change at epoch 5000) for S vmapped seeds, S in --seeds, the seed axis sharded over all
  devices exactly as `ojrs_jax.run.loop.train_seeds` does;
- the large deployment (`scale=large train=large`: N = 1000, M = 20) for --large-epochs epochs.
No SCIP or PSO reference is computed (they run on the CPU): the figures are training only.
Needs hydra-core and omegaconf besides jax, flax, optax and chex:
    PYTHONPATH=src python benchmarks/gpu_sweep.py [--small] [--out FILE.json]
The figures are printed and written, with the command, machine, device, date, commit and load, to
a record (benchmarks/record.py; default benchmarks/results/gpu_sweep.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# The CPU workaround flag of ojrs_jax/__init__ is unknown to other jaxlib builds: leave XLA alone
# unless this is the CPU backend of the pinned series.
os.environ.setdefault("OJRS_KEEP_XLA_FLAGS", "1")

import hydra  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recording, add_out_argument  # noqa: E402

from ojrs_jax.app.hydra import to_container  # noqa: E402
from ojrs_jax.run.build import build, pretrain_sae  # noqa: E402
from ojrs_jax.run.loop import train_seeds  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: list[str]) -> dict:
    """The `ojrs-reproduce` config with `overrides` (read from conf/: works uninstalled)."""
    with hydra.initialize_config_dir(str(CONF), version_base=None):
        return to_container(hydra.compose(config_name="reproduce", overrides=overrides))


def time_job(overrides: list[str], seeds: list[int], chunk: int) -> dict:
    """Algorithm 3 of the composed job for each seed count: wall time, compile apart."""
    c = compose(overrides + [f"train.chunk={chunk}"])
    spec = build(c)
    keys = spec.keys()
    env = spec.env_params()
    sae_params, sae_rep = pretrain_sae(keys["sae"], spec)
    epochs = spec.train_cfg.n_blocks * spec.train_cfg.phi
    out = {
        "overrides": overrides,
        "n_ue": spec.scn.n_ue,
        "n_mec": spec.scn.n_mec,
        "epochs": epochs,
        "chunk": chunk,
        "sae_pretrain_s": sae_rep["seconds"],
        "runs": [],
    }
    for s in seeds:
        run = train_seeds(spec.trainer, keys["train"], s, sae_params, env, shard=True)
        steady = run.seconds - run.first_chunk_seconds
        steady_epochs = epochs - chunk
        per_epoch = steady / steady_epochs if steady_epochs > 0 else run.seconds / epochs
        reward = np.asarray(run.metrics["reward"])
        row = {
            "seeds": s,
            "devices": run.devices,
            "train_s": run.seconds,
            "first_chunk_s": run.first_chunk_seconds,
            "ms_per_epoch": per_epoch * 1e3,
            "us_per_seed_epoch": per_epoch / s * 1e6,
            "final_reward_mean": float(reward[:, -500:].mean()),
        }
        out["runs"].append(row)
        print(json.dumps(row), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="tiny sizes, to check the script on CPU")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 64, 512])
    ap.add_argument("--large-epochs", type=int, default=2000)
    add_out_argument(ap, "gpu_sweep")
    args = ap.parse_args()
    rec = Recording()
    res = {"device": str(jax.devices()[0]), "devices": jax.device_count(), "jax": jax.__version__}
    t3 = ["experiment=table3_m5", "train=tuned"]
    lg = ["scale=large", "train=large", f"train.epochs={args.large_epochs}", "train.change_epoch=0"]
    if args.small:
        t3 += ["train.epochs=200", "train.change_epoch=100", "sae.steps=20"]
        lg = ["train=large", "train.epochs=200", "train.change_epoch=0"]
        res["table3_m5"] = time_job(t3, [1, 2], chunk=100)
        res["large"] = time_job(lg, [1], chunk=100)
    else:
        res["table3_m5"] = time_job(t3, args.seeds, chunk=1000)
        res["large"] = time_job(lg, [1, 4], chunk=min(1000, args.large_epochs // 2))
    print(json.dumps(res, indent=1))
    rec.write(args.out, res)


if __name__ == "__main__":
    main()
