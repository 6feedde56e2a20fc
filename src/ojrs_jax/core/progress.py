"""Work made visible: progress bars on stderr (tqdm) and `logging` lines for phases and summaries.

Every long phase of the package (SAE pretraining, training chunks, SCIP over many draws, the SAE
study's fits, the baselines) shows a bar on stderr when stderr is a terminal. The environment
variable `OJRS_PROGRESS` changes that default: `0` hides every bar, `1` shows them even when
stderr is a file or a pipe (a cluster job's log); a command's `progress=true` setting forces its
bar. Bars never go to stdout, which carries the commands' results.

Library modules log through `logging.getLogger(__name__)`: `phase` logs a phase's start and its
wall time, `log_summary` one line of key numbers. Under the Hydra commands these lines fill the
run directory's `<command>.log` (conf/hydra/job_logging/ojrs.yaml); the console shows warnings.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

ENV = "OJRS_PROGRESS"
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def progress_enabled(force: bool = False) -> bool:
    """Whether a bar is drawn: `force`, else `OJRS_PROGRESS` (0 / 1), else stderr is a terminal."""
    if force:
        return True
    v = os.environ.get(ENV, "").strip().lower()
    if v in _OFF:
        return False
    if v in _ON:
        return True
    return sys.stderr.isatty()


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    initial: int = 0,
    force: bool = False,
) -> tqdm:
    """A tqdm bar on stderr, drawn as `progress_enabled(force)` says (silent otherwise)."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        file=sys.stderr,
        disable=not progress_enabled(force),
        dynamic_ncols=True,
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary_line(values: Mapping[str, Any]) -> str:
    """`k1 v1, k2 v2, ...` with floats to 4 significant digits (None values are left out)."""
    return ", ".join(f"{k} {_fmt(v)}" for k, v in values.items() if v is not None)


def log_summary(log: logging.Logger, title: str, values: Mapping[str, Any]) -> None:
    """One INFO line of key numbers: `title: k1 v1, k2 v2, ...`."""
    log.info("%s: %s", title, summary_line(values))


@contextmanager
def phase(log: logging.Logger, what: str) -> Iterator[None]:
    """Log `what ...` at the start and `what: done in T s` at the end (INFO)."""
    log.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - t0)
