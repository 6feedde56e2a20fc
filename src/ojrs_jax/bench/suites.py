"""The benchmark's suites: versioned sets of offloading problems with certified optima (Sec. V.B).

A suite is a list of cells; a cell holds B problems of one size (N UEs, M MECs): the deployment
of each (positions, tasks D, F, w, MEC capacities, large-scale gains) and one channel h, stored
in float32 as a scheduler computes with them, and SCIP's certificate of each problem computed
once: the optimal decision, its latency in float64, SCIP's dual bound and status, its time.
A problem SCIP did not prove optimal is marked and left out of every NRR.

Suites (version `VERSION`), drawn deterministically from `SEED`:
- `paper`: the paper's deployments, N = 30 and M = 1..5 (`scale=paper_mM`), Rayleigh draws;
- `grid`: deployments of the `random` family with N in 10, 30, 100, 300 and M in 2, 5, 10;
- `mobile`: one deployment of N = 30, M = 5 whose UEs walk under time-correlated fading,
  every 20th epoch of 400;
- `large`: N = 1000, M = 20 deployments of the `random` family.

The suites are files of the package (`bench/data/<suite>-v<VERSION>.npz`, 2-3 MB in all) with
their SHA-256 in `bench/data/manifest.json`; `load_suite` refuses a file whose checksum differs.
`build_suite` regenerates a suite from its seed and certifies it (`ojrs-bench build SUITE`: the
maintainers' command; tests/test_bench.py checks that the regenerated problems equal the stored).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.core.io import atomic_write_bytes, atomic_write_text
from ojrs_jax.core.progress import bar
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.system.deployment import (
    Deployment,
    DeploymentConfig,
    mobile_trajectory,
    random_deployment,
    rayleigh,
)
from ojrs_jax.system.exact import exact_miqp
from ojrs_jax.system.scenario import Scenario, SystemConfig, make_scenario, sample_channels

VERSION = 1
SEED = 20261206
SUITES = ("paper", "grid", "mobile", "large")
CONSTANTS = ("bandwidth", "p_max", "beta0", "noise", "kappa", "f_local")
FIELDS = ("ue_pos", "mec_pos", "data_bits", "cycles", "weights", "f_mec", "gain", "h")
CERTIFICATE = ("opt_a", "opt_latency", "opt_bound", "opt_certified", "opt_seconds")
TIME_LIMIT = 120.0  # SCIP's limit per problem when a suite is built, s
# A problem counts as certified when SCIP proved its optimum, or when SCIP's dual bound is within
# this relative gap of its decision's latency: the NRR of a decision against that incumbent is
# then exact to within the gap (SCIP proves the N = 1000, M = 20 problems to gaps of 6e-6 to
# 2.3e-5 in two minutes, not to 0).
CERTIFY_GAP = 1e-4


@dataclass(frozen=True)
class Cell:
    """B problems of one size, with their certificates (arrays with a leading axis B)."""

    name: str  # e.g. "n30_m2"
    n_ue: int
    n_mec: int
    ue_pos: np.ndarray  # (B, N, 2) m
    mec_pos: np.ndarray  # (B, M, 2) m
    data_bits: np.ndarray  # (B, N) bits
    cycles: np.ndarray  # (B, N) CPU cycles
    weights: np.ndarray  # (B, N)
    f_mec: np.ndarray  # (B, M) Hz
    gain: np.ndarray  # (B, N, M) large-scale gains
    h: np.ndarray  # (B, N, M) the channel gains of the problem
    opt_a: np.ndarray | None = None  # (B, N) SCIP's decision
    opt_latency: np.ndarray | None = None  # (B,) its latency, float64, s
    opt_bound: np.ndarray | None = None  # (B,) SCIP's dual bound, s
    opt_certified: np.ndarray | None = None  # (B,) bool: SCIP proved it optimal
    opt_seconds: np.ndarray | None = None  # (B,) SCIP's time, s

    @property
    def size(self) -> int:
        return int(self.h.shape[0])

    @property
    def gap(self) -> np.ndarray:
        """SCIP's proven relative gap of each problem: (latency - bound) / latency."""
        lat = np.asarray(self.opt_latency, np.float64)
        return (lat - np.asarray(self.opt_bound, np.float64)) / lat

    @property
    def certified(self) -> np.ndarray:
        """(B,) bool: proved optimal, or proved within `CERTIFY_GAP` (see there)."""
        return np.asarray(self.opt_certified, bool) | (self.gap <= CERTIFY_GAP)


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of cells with the physical constants of every problem."""

    name: str
    version: int
    cells: tuple[Cell, ...]
    sys: SystemConfig  # the constants (B, P_max, beta0, sigma2, kappa, F_L)

    @property
    def size(self) -> int:
        return sum(c.size for c in self.cells)

    def deployment(self, cell: Cell) -> Deployment:
        """The cell's problems as one batched `Deployment` (leading axis B; every UE and MEC
        real), the form a scheduler is handed."""
        b = cell.size
        f32 = jnp.float32
        consts = {k: jnp.full((b,), getattr(self.sys, k), f32) for k in CONSTANTS}
        scn = Scenario(
            ue_pos=jnp.asarray(cell.ue_pos, f32),
            mec_pos=jnp.asarray(cell.mec_pos, f32),
            data_bits=jnp.asarray(cell.data_bits, f32),
            cycles=jnp.asarray(cell.cycles, f32),
            weights=jnp.asarray(cell.weights, f32),
            f_mec=jnp.asarray(cell.f_mec, f32),
            **consts,
        )
        return Deployment(
            scn=scn,
            gain=jnp.asarray(cell.gain, f32),
            ue_mask=jnp.ones((b, cell.n_ue), bool),
            mec_mask=jnp.ones((b, cell.n_mec), bool),
        )

    def scenarios(self, cell: Cell) -> list[Scenario]:
        """The problems' scenarios on the host (float32 values, NumPy arrays)."""
        dep = jax.tree.map(np.asarray, self.deployment(cell))
        return [jax.tree.map(lambda x, i=i: x[i], dep.scn) for i in range(cell.size)]


# --- drawing the suites -----------------------------------------------------------------------


def _from_deployments(name: str, dep: Deployment, h: Any) -> Cell:
    """A cell from batched deployments (every UE and MEC real) and their channels."""
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    s = dep.scn
    n, m = dep.gain.shape[-2:]
    return Cell(
        name=name,
        n_ue=int(n),
        n_mec=int(m),
        ue_pos=f(s.ue_pos),
        mec_pos=f(s.mec_pos),
        data_bits=f(s.data_bits),
        cycles=f(s.cycles),
        weights=f(s.weights),
        f_mec=f(s.f_mec),
        gain=f(dep.gain),
        h=f(h),
    )


def _paper(key: jax.Array, sys: SystemConfig, draws: int) -> list[Cell]:
    from ojrs_jax.system.deployment import from_scenario

    cells = []
    for m in range(1, 6):
        scn = make_scenario(replace(sys, n_ue=30, n_mec=m, layout="paper", seed=2))
        h = sample_channels(jax.random.fold_in(key, m), scn, draws)
        dep = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (draws, *jnp.shape(x))), from_scenario(scn)
        )
        cells.append(_from_deployments(f"n30_m{m}", dep, h))
    return cells


def _random_cells(key, sys, sizes, draws: int, dcfg: DeploymentConfig) -> list[Cell]:
    cells = []
    for n, m in sizes:
        cell = replace(dcfg, kind="random", n_ue=(n, n), n_max=n, n_mec=(m, m), m_max=m)

        def one(k, cell=cell):
            k_d, k_h = jax.random.split(k)
            dep = random_deployment(k_d, cell, sys)
            return dep, rayleigh(k_h, dep)

        keys = jax.random.split(jax.random.fold_in(key, 1000 * n + m), draws)
        dep, h = jax.jit(jax.vmap(one))(keys)
        cells.append(_from_deployments(f"n{n}_m{m}", dep, h))
    return cells


def _mobile(key, sys, dcfg: DeploymentConfig, epochs: int = 400, every: int = 20) -> list[Cell]:
    cell = replace(dcfg, kind="mobile", n_ue=(30, 30), n_max=30, n_mec=(5, 5), m_max=5)
    deps, h = jax.jit(lambda k: mobile_trajectory(k, cell, sys, epochs))(key)
    pick = lambda x: x[::every]  # noqa: E731
    return [_from_deployments("n30_m5_walk", jax.tree.map(pick, deps), pick(h))]


def draw_suite(name: str) -> Suite:
    """The problems of suite `name`, drawn from `SEED` (no certificates yet)."""
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r} (suites: {', '.join(SUITES)})")
    sys = SystemConfig()
    dcfg = DeploymentConfig()
    key = jax.random.fold_in(jax.random.key(SEED), SUITES.index(name))
    if name == "paper":
        cells = _paper(key, sys, draws=40)
    elif name == "grid":
        sizes = [(n, m) for n in (10, 30, 100, 300) for m in (2, 5, 10)]
        cells = _random_cells(key, sys, sizes, 10, dcfg)
    elif name == "mobile":
        cells = _mobile(key, sys, dcfg)
    else:
        cells = _random_cells(key, sys, [(1000, 20)], 4, dcfg)
    return Suite(name, VERSION, tuple(cells), sys)


def training_env(suite: Suite, cell: Cell) -> tuple[Any, Any]:
    """The distribution a cell's problems come from, as an environment and its parameters: a
    scheduler trained on a suite's training distribution (DROO) draws its frames from it. The
    paper's cells: that deployment under fresh Rayleigh draws; the grid's and the large cell:
    `random` deployments of the cell's N and M; the walk: `mobile` ones."""
    from ojrs_jax.env.distribution import DeploymentDistribution
    from ojrs_jax.env.fixed import FixedDeployment

    if suite.name == "paper":
        scn = jax.tree.map(lambda x: x[0], suite.deployment(cell).scn)
        env = FixedDeployment(scn)
        return env, env.default_params
    kind = "mobile" if suite.name == "mobile" else "random"
    n, m = cell.n_ue, cell.n_mec
    dcfg = replace(DeploymentConfig(), kind=kind, n_ue=(n, n), n_max=n, n_mec=(m, m), m_max=m)
    env = DeploymentDistribution(dcfg, suite.sys)
    return env, env.default_params


def certify_suite(suite: Suite, time_limit: float = TIME_LIMIT) -> Suite:
    """The suite with SCIP's certificate of every problem (warm started from Greedy)."""
    from ojrs_jax.search.baselines import greedy

    cells = []
    for cell in suite.cells:
        a0 = np.asarray(jax.jit(jax.vmap(greedy))(suite.deployment(cell)))
        scns, res = suite.scenarios(cell), []
        for i in bar(range(cell.size), desc=f"SCIP {suite.name}/{cell.name}", unit="problem"):
            h = np.asarray(cell.h[i], np.float64)
            res.append(exact_miqp(scns[i], h, time_limit, a0[i]))
        cells.append(
            replace(
                cell,
                opt_a=np.stack([r.a for r in res]).astype(np.int16),
                opt_latency=np.array([r.latency for r in res]),
                opt_bound=np.array([r.bound for r in res]),
                opt_certified=np.array([r.status == "optimal" for r in res]),
                opt_seconds=np.array([r.seconds for r in res]),
            )
        )
    return replace(suite, cells=tuple(cells))


# --- the suite files ---------------------------------------------------------------------------


def data_dir() -> Path:
    return Path(str(importlib.resources.files("ojrs_jax.bench") / "data"))


def file_name(name: str, version: int = VERSION) -> str:
    return f"{name}-v{version}.npz"


def to_bytes(suite: Suite) -> bytes:
    """The suite as an .npz archive (one array per cell and field, `<cell>/<field>`)."""
    arrays: dict[str, np.ndarray] = {
        "version": np.asarray(suite.version),
        "cells": np.asarray([c.name for c in suite.cells]),
        **{f"sys/{k}": np.asarray(getattr(suite.sys, k)) for k in CONSTANTS},
    }
    for c in suite.cells:
        for f in (*FIELDS, *CERTIFICATE):
            v = getattr(c, f)
            if v is None:
                raise ValueError(f"cell {c.name} has no certificate: certify_suite first")
            arrays[f"{c.name}/{f}"] = np.asarray(v)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def from_bytes(name: str, data: bytes) -> Suite:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        version = int(z["version"])
        sys = SystemConfig(**{k: float(z[f"sys/{k}"]) for k in CONSTANTS})
        cells = []
        for cname in [str(c) for c in z["cells"]]:
            v = {f: np.asarray(z[f"{cname}/{f}"]) for f in (*FIELDS, *CERTIFICATE)}
            n, m = v["h"].shape[1:]
            cells.append(Cell(cname, int(n), int(m), **v))
    return Suite(name, version, tuple(cells), sys)


def manifest() -> dict[str, Any]:
    return json.loads((data_dir() / "manifest.json").read_text())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_suite(name: str) -> Suite:
    """Suite `name` from the package's data, its checksum verified against the manifest."""
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r} (suites: {', '.join(SUITES)})")
    entry = manifest().get(name)
    if entry is None or entry.get("version") != VERSION:
        raise ConfigError(f"suite {name!r} v{VERSION} is not in the package's manifest")
    path = data_dir() / entry["file"]
    data = path.read_bytes()
    if sha256(data) != entry["sha256"]:
        raise ConfigError(
            f"{path} does not match its SHA-256 in the manifest: the suite file is damaged or "
            "was changed (rebuild it with `ojrs-bench build`, or reinstall the package)"
        )
    return from_bytes(name, data)


def build_suite(name: str, out: Path | None = None, time_limit: float = TIME_LIMIT) -> dict:
    """Draw and certify suite `name`, write its file and its manifest entry (maintainers)."""
    t0 = time.perf_counter()
    suite = certify_suite(draw_suite(name), time_limit)
    data = to_bytes(suite)
    out = data_dir() if out is None else Path(out)
    atomic_write_bytes(out / file_name(name), data)
    path = out / "manifest.json"
    entries = json.loads(path.read_text()) if path.exists() else {}
    entries[name] = {
        "version": VERSION,
        "file": file_name(name),
        "sha256": sha256(data),
        "bytes": len(data),
        "problems": suite.size,
        "optimal": int(sum(int(c.opt_certified.sum()) for c in suite.cells)),
        "certified": int(sum(int(c.certified.sum()) for c in suite.cells)),
        "max_gap": float(max(float(c.gap.max()) for c in suite.cells)),
        "cells": {c.name: c.size for c in suite.cells},
        "scip_seconds": float(sum(float(c.opt_seconds.sum()) for c in suite.cells)),
        "build_seconds": time.perf_counter() - t0,
        "seed": SEED,
        "time_limit": time_limit,
    }
    atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))
    return entries[name]
