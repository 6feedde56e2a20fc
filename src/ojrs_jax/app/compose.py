"""A command's config from Python, without Hydra's app: compose it, then run it (no equation).

c = compose_config(["train=paper", "train.epochs=2000"])    # as `ojrs-train` would see it
summary = train_from_config(c, "runs/paper")                # `ojrs-train` into runs/paper
"""

from __future__ import annotations

from pathlib import Path

from ojrs_jax.app.hydra import to_container
from ojrs_jax.core.settings import rename_overrides, rename_settings
from ojrs_jax.run.train import parse, train_run


def compose_config(overrides: list[str] | None = None, config_name: str = "train") -> dict:
    """The resolved config of a command (`train`, `baselines`, ...) with Hydra overrides, as the
    command line would compose it, without running Hydra's app (no run directory, no logging)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
        overrides = rename_overrides(list(overrides or []), config_name)
        return to_container(compose(config_name, overrides=overrides))


def train_from_config(
    cfg: dict | list[str] | None, run_dir: str | Path, resume: bool = False
) -> dict:
    """`ojrs-train` without Hydra's app: `cfg` is a resolved config dict or a list of overrides
    (`["train=paper", "train.epochs=2000"]`); writes the run to `run_dir`, returns its summary."""
    c = rename_settings(cfg, "train") if isinstance(cfg, dict) else compose_config(cfg)
    spec, opts = parse(c)
    return train_run(spec, opts, Path(run_dir), resume=resume)
