"""Scoring any scheduler on a suite against the certified optima (NRR of Sec. V.B, eqs. 5-13).

The plug-in protocol: a scheduler is
- a Python callable `decide(deployment, h) -> a`: `deployment` a batched
  `system.deployment.Deployment` (leading axis B, every UE and MEC real; build your own inputs
  from `deployment.gain`, `deployment.scn.data_bits`, ...), `h` (B, N, M) float32 channel gains,
  `a` (B, N) integers, a_i = 0 local and j in 1..M MEC j. With `batched=False` the callable gets
  one problem at a time (`deployment` unbatched, h (N, M)) and returns a (N,);
- or an external command, for a scheduler written elsewhere (PyTorch, MATLAB, C): the harness
  writes the cell's problems to an .npz (`export_cell`: the fields of `suites.FIELDS` with a
  leading axis B, and the constants), runs the command with the input and output paths (`{in}`
  and `{out}` in the command are replaced; without them the two paths are appended), and reads
  `a` (B, N) from the output .npz.

For each cell the harness times the scheduler (a first call to compile or start, then the
timed calls: time per decision = wall time / B), checks the decisions (shape, integers, range
0..M; a fault is a `ConfigError` naming the scheduler and the cell), and scores them in float64
against the stored optima (`system.certify.certify` with the certificates as its reference;
problems SCIP proved neither optimal nor within `suites.CERTIFY_GAP` are left out and counted).
Results: NRR mean, median, p10
and min, and the time per decision, per cell and over the suite.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from ojrs_jax.bench.suites import CONSTANTS, FIELDS, Cell, Suite
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.system.certify import Case, certify

Decide = Callable[[Any, Any], Any]


class Prepared(NamedTuple):
    """What an entry's `prepare` returns for a cell: its decision function and the seconds of
    training it took (a run reused from disk reports the training time of its record)."""

    decide: Decide
    train_seconds: float


@dataclass(frozen=True)
class Entry:
    """A scheduler on the leaderboard: its decision function and what it applies to."""

    name: str
    decide: Decide | None = None  # (deployment, h) -> a; None for an external command
    command: str | None = None  # an external command (see the module docstring)
    batched: bool = True  # `decide` takes a batch (B, ...) at once
    suites: tuple[str, ...] | None = None  # the suites it applies to (None: every suite)
    note: str = ""  # what it is, for the leaderboard
    prepare: Callable[[Suite, Cell], Prepared] | None = None  # builds `decide` for a cell
    # (trained per cell: DROO, the main job), called once before the timed calls


def export_cell(suite: Suite, cell: Cell, path: Path) -> Path:
    """The cell's problems as an .npz for an external scheduler: FIELDS with a leading axis B,
    the constants of `SystemConfig`, n_ue and n_mec."""
    arrays = {f: getattr(cell, f) for f in FIELDS}
    arrays |= {k: np.asarray(getattr(suite.sys, k)) for k in CONSTANTS}
    arrays |= {"n_ue": np.asarray(cell.n_ue), "n_mec": np.asarray(cell.n_mec)}
    np.savez(path, **arrays)
    return Path(path)


def check_decisions(a: Any, cell: Cell, who: str) -> np.ndarray:
    """a (B, N) integers in 0..M, or a `ConfigError` naming the scheduler and the cell."""
    where = f"scheduler {who!r} on cell {cell.name}"
    try:
        a = np.asarray(a)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: its decisions are not an array") from None
    if a.shape != (cell.size, cell.n_ue):
        want = (cell.size, cell.n_ue)
        raise ConfigError(f"{where}: decisions of shape {a.shape}, expected (B, N) = {want}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ConfigError(f"{where}: decisions must be integers (0 local, j MEC j)")
    elif a.dtype.kind not in "iu":
        raise ConfigError(f"{where}: decisions must be integers, got dtype {a.dtype}")
    if a.min() < 0 or a.max() > cell.n_mec:
        raise ConfigError(
            f"{where}: decisions must lie in 0..M = 0..{cell.n_mec}, got {a.min()}..{a.max()}"
        )
    return a.astype(np.int32)


def _run_python(entry: Entry, decide: Decide, suite: Suite, cell: Cell, repeats: int):
    dep, h = suite.deployment(cell), jax.numpy.asarray(cell.h)
    if entry.batched:

        def call():
            return jax.block_until_ready(decide(dep, h))

    else:
        one = [jax.tree.map(lambda x, i=i: x[i], dep) for i in range(cell.size)]

        def call():
            return np.stack(
                [np.asarray(jax.block_until_ready(decide(one[i], h[i]))) for i in range(cell.size)]
            )

    a = call()  # compiles
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = call()
        times.append(time.perf_counter() - t0)
    return a, float(np.median(times))


def _run_command(entry: Entry, suite: Suite, cell: Cell):
    with tempfile.TemporaryDirectory(prefix="ojrs-bench-") as d:
        src, out = export_cell(suite, cell, Path(d) / "in.npz"), Path(d) / "out.npz"
        cmd = entry.command or ""
        if "{in}" in cmd or "{out}" in cmd:
            cmd = cmd.replace("{in}", shlex.quote(str(src))).replace("{out}", shlex.quote(str(out)))
        else:
            cmd = f"{cmd} {shlex.quote(str(src))} {shlex.quote(str(out))}"
        t0 = time.perf_counter()
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ConfigError(
                f"scheduler {entry.name!r} on cell {cell.name}: the command exited with "
                f"{p.returncode}: {tail}"
            )
        if not out.is_file():
            raise ConfigError(f"scheduler {entry.name!r} on cell {cell.name}: no output {out}")
        with np.load(out, allow_pickle=False) as z:
            if "a" not in z.files:
                raise ConfigError(
                    f"scheduler {entry.name!r} on cell {cell.name}: the output has no array 'a'"
                )
            return np.asarray(z["a"]), seconds


def score_cell(suite: Suite, cell: Cell, a: np.ndarray) -> dict[str, Any]:
    """NRR of decisions a (B, N) on the cell's certified problems (float64, stored optima)."""
    ok = cell.certified
    scns = suite.scenarios(cell)
    ue, mec = np.arange(cell.n_ue), np.arange(cell.n_mec)
    cs = [Case(scns[i], np.asarray(cell.h[i], np.float64), ue, mec) for i in np.flatnonzero(ok)]
    ref = (np.asarray(cell.opt_latency)[ok], int(ok.sum()))
    s = certify(cs, {"x": a[ok]}, reference=ref)
    return {
        "problems": cell.size,
        "certified": int(ok.sum()),
        "nrr": s["nrr_x"],
        "nrr_median": s["nrr_x_median"],
        "nrr_p10": s["nrr_x_p10"],
        "nrr_min": s["nrr_x_min"],
        "latency": s["latency_x"],
        "latency_exact": s["latency_exact"],
        "ratios": (np.asarray(cell.opt_latency)[ok] / _latencies(cs, a[ok])).tolist(),
    }


def _latencies(cs: list[Case], a: np.ndarray) -> np.ndarray:
    from ojrs_jax.system.exact import latency_np

    return np.array([latency_np(c.scn, c.h, a[i]) for i, c in enumerate(cs)])


def run_entry(entry: Entry, suite: Suite, repeats: int = 3) -> dict[str, Any]:
    """`entry` on every cell of `suite`: per-cell NRR and time per decision, and the suite's."""
    cells, ratios, secs, n_dec, train_s = {}, [], 0.0, 0, 0.0
    for cell in suite.cells:
        if entry.command is not None:
            a, seconds = _run_command(entry, suite, cell)
        else:
            decide = entry.decide
            if entry.prepare is not None:
                decide, trained = entry.prepare(suite, cell)
                train_s += trained
            a, seconds = _run_python(entry, decide, suite, cell, repeats)
        a = check_decisions(a, cell, entry.name)
        s = score_cell(suite, cell, a)
        s["seconds_per_decision"] = seconds / cell.size
        ratios += s.pop("ratios")
        secs, n_dec = secs + seconds, n_dec + cell.size
        cells[cell.name] = s
    r = np.asarray(ratios)
    return {
        "scheduler": entry.name,
        "suite": suite.name,
        "version": suite.version,
        "problems": suite.size,
        "certified": int(r.size),
        "nrr": float(r.mean()),
        "nrr_median": float(np.median(r)),
        "nrr_p10": float(np.percentile(r, 10)),
        "nrr_min": float(r.min()),
        "seconds_per_decision": secs / n_dec,
        "train_seconds": train_s,
        "cells": cells,
    }
