"""Optional experiment tracking: the per-epoch training metrics as TensorBoard event files.

Off by default. With `tensorboard=true` (`ojrs-train`, `ojrs-train-any`) or
`reproduce.tensorboard=true` (`ojrs-reproduce`), every chunk's metrics (reward, loss, T_SA, ...)
are written, one point per epoch, to `<run dir>/tensorboard/` by tensorboardX, an optional
dependency (`pip install "ojrs-jax[tracking]"`, which also installs TensorBoard to view them:
`tensorboard --logdir outputs`). With a seed axis (the reproduce jobs) the seed mean goes under
the metric's name and each seed under `seed<s>/<name>`. The CSV and npz outputs are unchanged.

Events are written synchronously (tensorboardX's `EventsWriter`, not its `SummaryWriter`): the
latter writes from a background thread, which dies on a full disk while the training loop then
blocks forever on its full queue, holding the run directory's lock. Here a failed write raises
in the training process, which stops with one `error:` line.
"""

from __future__ import annotations

import logging
import time
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
        from tensorboardX.event_file_writer import EventsWriter

        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._events = EventsWriter(str(self.log_dir / "events"))
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
        self._events.flush()

    def _scalars(self, tag: str, v: np.ndarray, first_epoch: int) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        now = time.time()
        for i, x in enumerate(v):
            ev = Event(wall_time=now, step=first_epoch + i, summary=scalar(tag, float(x)))
            self._events.write_event(ev)

    def close(self) -> None:
        self._events.close()


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
