"""`ojrs-train-any`: train one feature policy over a deployment distribution (Algorithm 3).

    ojrs-train-any                                    # deployment=random, general=default
    ojrs-train-any deployment=mobile general.epochs=2000

Writes config.yaml, any_model.msgpack (for `ojrs-decide --deployment` and
`ojrs_jax.run.any_scheduler.load_any_run`), metrics.csv and summary.json to the Hydra run directory.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ojrs_jax.app.hydra import hydra_cli
from ojrs_jax.core.settings import to_container
from ojrs_jax.experiments.train_any import train_any_run


@hydra_cli("train_any")
def main(cfg: DictConfig) -> None:
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    c = to_container(cfg)
    s = train_any_run(c, out, bool(c.get("progress", False)))
    print(
        f"trained {s['epochs']} epochs in {s['train_seconds']:.1f} s (first chunk with compile "
        f"{s['first_chunk_seconds_with_compile']:.1f} s); policy / ASA latency ratio over the "
        f"last 500 epochs {s['ratio_last500']:.4f}"
    )
    print(f"run directory: {out}")


if __name__ == "__main__":
    main()
