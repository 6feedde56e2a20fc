"""MEC system model: deployment, tasks and Rayleigh channels (paper Sec. III, eqs. 1-3).

A `Scenario` is a pytree holding everything that is fixed for a deployment: UE and MEC positions,
task sizes, weights and the physical constants. Sizes (N UEs, M MECs) are read from array shapes,
so they are static under `jit`; every number is a leaf, so it can be swept or vmapped without
recompiling. The channel sampler is the pure function ``key -> h (N, M)``:

    h_ij = beta0 / max(R_ij, 1)^2 * l_ij,   l_ij ~ Exp(1)   (Rayleigh fading power)
    r_ij = B log2(1 + p_ij h_ij / sigma2)                   (eq. 2)

All quantities are SI: metres, bits, CPU cycles, Hz, W, s.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ojrs_jax.core.settings import ConfigError, in_float32, seed_value

# MEC positions of the paper's experiments (Sec. V.A) in a 50 m x 50 m area, keyed by M.
PAPER_LAYOUTS: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((25.0, 25.0),),
    2: ((10.0, 10.0), (40.0, 40.0)),
    3: ((10.0, 10.0), (25.0, 25.0), (40.0, 40.0)),
    4: ((10.0, 10.0), (10.0, 40.0), (40.0, 10.0), (40.0, 40.0)),
    5: ((10.0, 10.0), (10.0, 40.0), (25.0, 25.0), (40.0, 10.0), (40.0, 40.0)),
}
LAYOUTS = ("paper", "grid", "random")
FORMAT_VERSION = 1
# Largest deployment a config may ask for: ten times the UEs and five times the MECs of the
# largest preset (scale=large, N = 1000, M = 20). Beyond it one decision's arrays (the policy's
# N (M + 1) logits, ASA's K N + 1 uint32 counters per iteration, the N*M-wide first layer) and
# a run's memory are far outside anything tested; `scale.n_ue=100000` used to end in an
# OverflowError or hours of compute instead of a message.
N_UE_MAX, N_MEC_MAX = 10_000, 100


@struct.dataclass
class Scenario:
    """One MEC deployment: positions, tasks and physical constants (SI units)."""

    ue_pos: chex.Array  # (N, 2) metres
    mec_pos: chex.Array  # (M, 2) metres
    data_bits: chex.Array  # (N,) D_i, bits to upload
    cycles: chex.Array  # (N,) F_i, CPU cycles of the task
    weights: chex.Array  # (N,) w_i > 0
    f_mec: chex.Array  # (M,) F_MEC_j, Hz
    bandwidth: chex.Array  # () B, Hz
    p_max: chex.Array  # () P_max, W
    beta0: chex.Array  # () channel gain at 1 m
    noise: chex.Array  # () sigma2, W
    kappa: chex.Array  # () effective switched capacitance of the UE CPU
    f_local: chex.Array  # () F_L, Hz: cap of the UE CPU

    @property
    def n_ue(self) -> int:
        return self.ue_pos.shape[-2]

    @property
    def n_mec(self) -> int:
        return self.mec_pos.shape[-2]


@dataclass(frozen=True)
class SystemConfig:
    """Typed, validated scenario settings (the Hydra `scale` and `system` groups, merged)."""

    n_ue: int = 30
    n_mec: int = 2
    area: float = 50.0
    layout: str = "paper"
    data_bits: float = 8e5
    cycles: float = 1e9
    weight: float = 1.0
    bandwidth: float = 1e6
    p_max: float = 1.0
    beta0: float = 1e-3
    noise: float = 2e-7
    kappa: float = 1e-27
    f_local: float = 1e9
    f_mec: float = 50e9
    seed: int = 2

    def __post_init__(self) -> None:
        for name, top in (("n_ue", N_UE_MAX), ("n_mec", N_MEC_MAX)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise ConfigError(f"scale.{name} must be an integer in 1..{top}, got {v!r}")
        for name in (
            "area",
            "data_bits",
            "cycles",
            "weight",
            "bandwidth",
            "p_max",
            "beta0",
            "noise",
            "kappa",
            "f_local",
            "f_mec",
        ):
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool)
            if not ok or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name} must be a finite positive number, got {v!r}")
            in_float32(v, name)
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.layout == "paper" and self.n_mec not in PAPER_LAYOUTS:
            raise ConfigError(
                f"layout 'paper' exists for n_mec in 1..5 only, got n_mec={self.n_mec}; "
                "use layout=grid or layout=random"
            )
        seed_value({"seed": self.seed}, "seed", "scale.")

    @classmethod
    def from_mapping(cls, m: dict) -> SystemConfig:
        """Build from a plain mapping, rejecting unknown keys by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"unknown system setting {unknown[0]!r}")
        return cls(**m)


def mec_layout(key: jax.Array, n_mec: int, area: float, layout: str) -> np.ndarray:
    """MEC positions (M, 2): the paper's sites, a centred grid, or uniform from `key`."""
    if layout == "paper":
        return np.asarray(PAPER_LAYOUTS[n_mec], dtype=np.float64)
    if layout == "grid":
        cols = math.ceil(math.sqrt(n_mec))
        rows = math.ceil(n_mec / cols)
        cells = [
            ((c + 0.5) * area / cols, (r + 0.5) * area / rows)
            for r in range(rows)
            for c in range(cols)
        ]
        return np.asarray(cells[:n_mec], dtype=np.float64)
    if layout == "random":
        return np.asarray(jax.random.uniform(key, (n_mec, 2), maxval=area), dtype=np.float64)
    raise ConfigError(f"unknown layout {layout!r}")


def make_scenario(cfg: SystemConfig) -> Scenario:
    """Build the deployment of `cfg`: UEs uniform in the square (from cfg.seed), MECs by layout."""
    k_ue, k_mec = jax.random.split(jax.random.key(cfg.seed))
    n, m = cfg.n_ue, cfg.n_mec
    ue = jax.random.uniform(k_ue, (n, 2), maxval=cfg.area)
    mec = jnp.asarray(mec_layout(k_mec, m, cfg.area, cfg.layout), dtype=jnp.float32)
    f32 = jnp.float32
    return Scenario(
        ue_pos=ue.astype(f32),
        mec_pos=mec,
        data_bits=jnp.full((n,), cfg.data_bits, f32),
        cycles=jnp.full((n,), cfg.cycles, f32),
        weights=jnp.full((n,), cfg.weight, f32),
        f_mec=jnp.full((m,), cfg.f_mec, f32),
        bandwidth=jnp.asarray(cfg.bandwidth, f32),
        p_max=jnp.asarray(cfg.p_max, f32),
        beta0=jnp.asarray(cfg.beta0, f32),
        noise=jnp.asarray(cfg.noise, f32),
        kappa=jnp.asarray(cfg.kappa, f32),
        f_local=jnp.asarray(cfg.f_local, f32),
    )


def distances(scn: Scenario) -> jax.Array:
    """Horizontal UE-MEC distances R_ij (N, M) in metres, clipped below at 1 m."""
    d = jnp.linalg.norm(scn.ue_pos[:, None, :] - scn.mec_pos[None, :, :], axis=-1)
    return jnp.maximum(d, 1.0)


def path_gain(scn: Scenario) -> jax.Array:
    """Large-scale gain beta0 / R_ij^2 (N, M): the mean of h_ij."""
    return scn.beta0 / distances(scn) ** 2


def sample_channel(key: jax.Array, scn: Scenario) -> jax.Array:
    """One epoch's channel gains h (N, M): path gain times i.i.d. Exp(1) Rayleigh fading power."""
    g = path_gain(scn)
    return g * jax.random.exponential(key, g.shape, dtype=g.dtype)


def sample_channels(key: jax.Array, scn: Scenario, n_epochs: int) -> jax.Array:
    """`n_epochs` independent channel draws (E, N, M)."""
    return jax.vmap(sample_channel, in_axes=(0, None))(jax.random.split(key, n_epochs), scn)


def rate(scn: Scenario, h: jax.Array, p: jax.Array) -> jax.Array:
    """Uplink rate r = B log2(1 + p h / sigma2) in bit/s (eq. 2), broadcasting over h and p.

    Computed as B log1p(snr) / ln 2: in float32, 1 + snr rounds to 1 below snr ~ 6e-8 (a deep
    fade far from the MEC), which made r = 0 and the latency infinite, and log2(1 + snr) loses
    digits well above that (1% at snr ~ 1e-5).
    """
    return scn.bandwidth * jnp.log1p(p * h / scn.noise) / jnp.log(2.0)


def local_speed(scn: Scenario) -> jax.Array:
    """Optimal local CPU speed f_i0 = min(F_L, (P_max / kappa)^(1/3)) (C3, C4)."""
    return jnp.minimum(scn.f_local, jnp.cbrt(scn.p_max / scn.kappa))


def with_weights(scn: Scenario, weights: jax.Array) -> Scenario:
    """The same deployment with new task weights (the paper's dynamic environment)."""
    return scn.replace(weights=jnp.asarray(weights, scn.weights.dtype))


# --- files -----------------------------------------------------------------------------------

_FIELDS = tuple(Scenario.__dataclass_fields__)


def scenario_to_dict(scn: Scenario) -> dict:
    """Plain JSON-ready dict in SI units (lists of floats)."""
    out: dict = {
        "format": "ojrs-scenario",
        "version": FORMAT_VERSION,
        "units": "SI: m, bit, cycle, Hz, W",
    }
    for name in _FIELDS:
        out[name] = np.asarray(getattr(scn, name), dtype=np.float64).tolist()
    return out


def scenario_from_dict(d: dict) -> Scenario:
    """Inverse of `scenario_to_dict`, checking every field's presence, type, shape and sign."""
    if not isinstance(d, dict) or d.get("format") != "ojrs-scenario":
        raise ConfigError("not an ojrs scenario file (missing format: ojrs-scenario)")
    missing = [f for f in _FIELDS if f not in d]
    if missing:
        raise ConfigError(f"scenario file lacks field {missing[0]!r}")
    arrs = {}
    for f in _FIELDS:
        try:  # a string, a bool, null, an object or a ragged list is not an array of numbers
            a = np.asarray(d[f])
        except ValueError:
            a = np.asarray(None)
        if a.dtype.kind not in "iuf":
            raise ConfigError(
                f"scenario field {f!r} must be a number or a rectangular list of numbers, "
                f"got {json.dumps(d[f])[:40]}"
            )
        arrs[f] = a.astype(np.float64)
    for f in ("ue_pos", "mec_pos"):
        if arrs[f].ndim != 2 or arrs[f].shape[1:] != (2,):
            raise ConfigError(f"scenario field {f!r} has shape {arrs[f].shape}, expected (n, 2)")
    n, m = arrs["ue_pos"].shape[0], arrs["mec_pos"].shape[0]
    shapes = {
        "ue_pos": (n, 2),
        "mec_pos": (m, 2),
        "data_bits": (n,),
        "cycles": (n,),
        "weights": (n,),
        "f_mec": (m,),
    }
    for f, a in arrs.items():
        want = shapes.get(f, ())
        if a.shape != want:
            raise ConfigError(f"scenario field {f!r} has shape {a.shape}, expected {want}")
        if not np.all(np.isfinite(a)):
            raise ConfigError(f"scenario field {f!r} has a non-finite value")
        if f not in ("ue_pos", "mec_pos") and not np.all(a > 0):
            raise ConfigError(f"scenario field {f!r} must be positive")
    return Scenario(**{f: jnp.asarray(a, jnp.float32) for f, a in arrs.items()})


def save_scenario(scn: Scenario, path: str | os.PathLike) -> None:
    """Write the scenario as JSON (atomically: a temporary file renamed into place)."""
    from ojrs_jax.core.io import atomic_write_text

    atomic_write_text(path, json.dumps(scenario_to_dict(scn), indent=1))


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read a scenario JSON file written by `save_scenario` (or by another tool, same schema)."""
    try:
        with open(path) as fh:
            d = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read scenario file {str(path)!r}: {e}") from None
    try:
        return scenario_from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def system_config(c: Mapping[str, Any]) -> SystemConfig:
    """Merge the `scale` and `system` groups of a config (a plain mapping, or a `DictConfig`)
    into one validated `SystemConfig`."""
    merged = {**(c.get("system") or {}), **(c.get("scale") or {})}
    return SystemConfig.from_mapping(merged)
