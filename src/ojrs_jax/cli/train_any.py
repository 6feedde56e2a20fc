"""`ojrs-train-any`: `ojrs-train` with deployment=random and train=any (Algorithm 3, any N, M).

    ojrs-train-any                                    # random deployments, the feature policy
    ojrs-train-any deployment=mobile train.epochs=2000

The same job as `ojrs-train` (`run.train`): config.yaml, model.msgpack (for
`ojrs-decide --deployment` and `ojrs_jax.load_run`), checkpoint/, metrics.csv, summary.json and
the figures in the Hydra run directory, certified on held-out deployments at the end.
"""

from __future__ import annotations

from ojrs_jax.app.hydra import hydra_cli
from ojrs_jax.cli.train import run

main = hydra_cli("train_any", own_record=True)(run)

if __name__ == "__main__":
    main()
