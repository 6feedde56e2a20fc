"""Optional experiment tracking: the per-epoch training metrics as TensorBoard event files.

Off by default. With `tensorboard=true` (`ojrs-train`, `ojrs-train-any`) or
`reproduce.tensorboard=true` (`ojrs-reproduce`), every chunk's metrics (reward, loss, T_SA, ...)
are written, one point per epoch, to `<run dir>/tensorboard/` by tensorboardX, an optional
dependency (`pip install "ojrs-jax[tracking]"`, which also installs TensorBoard to view them:
`tensorboard --logdir outputs`). With a seed axis (the reproduce jobs) the seed mean goes under
the metric's name and each seed under `seed<s>/<name>`. The CSV and npz outputs are unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ojrs_jax.core.settings import ConfigError

INSTALL = 'pip install "ojrs-jax[tracking]"'
SUBDIR = "tensorboard"
log = logging.getLogger(__name__)


class TensorBoardWriter:
    """Per-epoch scalars to TensorBoard event files in `log_dir` (tensorboardX)."""

    def __init__(self, log_dir: Path) -> None:
        from tensorboardX import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(str(self.log_dir))
        log.info("writing per-epoch metrics for TensorBoard to %s", self.log_dir)

    def write(self, metrics: Mapping[str, np.ndarray], first_epoch: int) -> None:
        """Metrics of consecutive epochs from `first_epoch`: (epochs,) or (seeds, epochs)."""
        for name, values in metrics.items():
            v = np.asarray(values, np.float64)
            if v.ndim == 2:
                for s, row in enumerate(v):
                    self._scalars(f"seed{s}/{name}", row, first_epoch)
                v = v.mean(axis=0)
            self._scalars(name, v.reshape(-1), first_epoch)
        self._writer.flush()

    def _scalars(self, tag: str, v: np.ndarray, first_epoch: int) -> None:
        for i, x in enumerate(v):
            self._writer.add_scalar(tag, float(x), first_epoch + i)

    def close(self) -> None:
        self._writer.close()


def tensorboard_setting(value: object, setting: str = "tensorboard") -> bool:
    """Validate the on/off setting at start-up; on, tensorboardX must be importable (else a
    `ConfigError` naming the extra to install)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{setting} must be true or false, got {value!r}")
    if value:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"{setting}=true needs the tensorboardX package, which is not installed: {INSTALL}"
            ) from None
    return value


def open_writer(enabled: bool, run_dir: Path) -> TensorBoardWriter | None:
    """A writer into `run_dir/tensorboard` when `enabled` (see `tensorboard_setting`), else None."""
    return TensorBoardWriter(Path(run_dir) / SUBDIR) if enabled else None
