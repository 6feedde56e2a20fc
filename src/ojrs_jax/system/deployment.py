"""Deployment distributions (fixed, random, mobile) and masked costs for any N, M (eqs. 1-3, 5-13).

A `Deployment` is a `Scenario` padded to static sizes (N_max, M_max) plus masks of the real UEs
and MECs and the large-scale gains g_ij (N_max, M_max). Padded UEs contribute nothing to the
weighted latency and padded MECs are never an option: `masked_costs` gives them zero costs and a
huge cost respectively, and every search, baseline and policy also masks them out. A `Problem`
is one epoch's deployment with its channel; `problem_costs`, `problem_latency` and
`problem_allocation` are P2's (eqs. 5-13) on its real part.

The `deployment` group's kinds: `fixed` is the paper's deployment (the `scale`/`system` groups,
Rayleigh fading redrawn per epoch: the environment `env.fixed.FixedDeployment`); the samplers
of the others are pure functions of a key with static sizes bound (Python ints):

- `random`: per episode, N ~ U{n_lo..n_hi} (n_hi <= N_max), M ~ U{m_lo..m_hi}, the area side,
  D_i, F_i, F_MEC_j log-uniform and w_i uniform in configured ranges, UEs uniform in the square,
  MECs uniform or on a grid;
- `mobile`: `random` plus random-waypoint motion at `speed` m/s between epochs of `epoch_s`
  seconds, and time-correlated Rayleigh fading as a Gauss-Markov process on the complex gain

      l_ij(t) = rho l_ij(t-1) + sqrt(1 - rho^2) e_ij(t),  e ~ CN(0, 1),  |l|^2 ~ Exp(1),
      rho = J0(2 pi f_d T),  f_d = v / lambda_c,  lambda_c = c / f_c   (Jakes' correlation).

h_ij = g_ij |l_ij|^2 with g_ij = beta0 / max(R_ij, 1 m)^2 (eq. 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ojrs_jax.core.settings import in_float32
from ojrs_jax.system.p2 import (
    OptionCosts,
    costs_latency,
    latency,
    option_costs,
    solve_p2_closed_form,
)
from ojrs_jax.system.scenario import (
    ConfigError,
    Scenario,
    SystemConfig,
    distances,
    mec_layout,
)

KINDS = ("fixed", "random", "mobile")
MEC_LAYOUTS = ("random", "grid")
LIGHT_SPEED = 299_792_458.0  # m/s
PAD_COST = 1e6  # s: cost of a padded MEC option (never chosen; finite so no inf - inf)


@struct.dataclass
class Deployment:
    """A deployment padded to (N_max, M_max), with masks of the real UEs and MECs.

    `masked` (static) says whether its costs honour the masks: True for a deployment drawn from a
    distribution or given by a user (padding possible), False for a fixed `Scenario` in which
    every UE and MEC is real (`from_scenario`): its costs are then P2's own (`p2.option_costs`,
    `p2.latency`), bit for bit the computation of the paper's deployment.
    """

    scn: Scenario  # padded; positions are informational (costs use `gain`)
    gain: chex.Array  # (N, M) large-scale gain g_ij (mean of h_ij)
    ue_mask: chex.Array  # (N,) bool real UE
    mec_mask: chex.Array  # (M,) bool real MEC
    masked: bool = struct.field(pytree_node=False, default=True)

    @property
    def n_max(self) -> int:
        return self.gain.shape[-2]

    @property
    def m_max(self) -> int:
        return self.gain.shape[-1]


def link_mask(dep: Deployment) -> jax.Array:
    """(N, M) bool: both ends real."""
    return dep.ue_mask[..., :, None] & dep.mec_mask[..., None, :]


@struct.dataclass
class Problem:
    """The decision problem of one epoch (P1, Sec. III): a deployment and its channel."""

    dep: Deployment  # the deployment in force, with the task weights of the epoch
    h: chex.Array  # (N, M) channel gains of the epoch


@dataclass(frozen=True)
class DeploymentConfig:
    """The Hydra `deployment` group, typed. Ranges are [low, high] (equal ends: a constant)."""

    kind: str = "fixed"  # fixed | random | mobile
    n_ue: tuple[int, int] = (5, 100)  # N range of a random deployment
    n_max: int = 100  # static padded N (>= n_ue[1])
    n_mec: tuple[int, int] = (1, 10)  # M range
    m_max: int = 10  # static padded M (>= n_mec[1])
    area: tuple[float, float] = (50.0, 200.0)  # side of the square area, m (log-uniform)
    mec_layout: str = "random"  # random | grid
    data_bits: tuple[float, float] = (4e5, 1.6e6)  # D_i, bits (log-uniform)
    cycles: tuple[float, float] = (5e8, 2e9)  # F_i, cycles (log-uniform)
    weight: tuple[float, float] = (0.5, 1.5)  # w_i (uniform)
    f_mec: tuple[float, float] = (25e9, 100e9)  # F_MEC_j, Hz (log-uniform)
    speed: float = 1.5  # mobile: UE speed v, m/s
    epoch_s: float = 0.01  # mobile: epoch duration T, s
    carrier_hz: float = 2e9  # mobile: carrier frequency f_c, Hz
    episode: int = 100  # mobile: epochs before a new deployment is drawn (training)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"deployment.kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            )
        if self.mec_layout not in MEC_LAYOUTS:
            raise ConfigError(
                f"deployment.mec_layout must be random or grid, got {self.mec_layout!r}"
            )
        for name in ("n_max", "m_max", "episode"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"deployment.{name} must be a positive integer, got {v!r}")
        for name, top in (("n_ue", self.n_max), ("n_mec", self.m_max)):
            lo, hi = _pair(self, name, integer=True)
            if hi > top:
                raise ConfigError(
                    f"deployment.{name} high end {hi} exceeds its static maximum {top}"
                )
        for name in ("area", "data_bits", "cycles", "weight", "f_mec"):
            _pair(self, name, integer=False)
        for name in ("speed", "epoch_s", "carrier_hz"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"deployment.{name} must be a finite number, got {v!r}")
            if v < 0 or (v == 0 and name != "speed"):
                raise ConfigError(f"deployment.{name} must be positive, got {v!r}")
            in_float32(v, f"deployment.{name}")

    @classmethod
    def from_mapping(cls, m: dict) -> DeploymentConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"unknown deployment setting {unknown[0]!r}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in m.items()}
        return cls(**kw)

    @property
    def rho(self) -> float:
        """Gauss-Markov fading correlation between epochs, J0(2 pi f_d T)."""
        f_d = self.speed * self.carrier_hz / LIGHT_SPEED
        x = 2 * math.pi * f_d * self.epoch_s
        t = (np.arange(64) + 0.5) * (math.pi / 64)  # `bessel_j0` in NumPy: a static number
        return float(np.mean(np.cos(x * np.sin(t))))


def _pair(cfg: DeploymentConfig, name: str, integer: bool) -> tuple:
    v = getattr(cfg, name)
    ok = isinstance(v, tuple) and len(v) == 2
    kind = int if integer else (int, float)
    ok = ok and all(isinstance(x, kind) and not isinstance(x, bool) for x in v)
    ok = ok and all(math.isfinite(x) and x > 0 for x in v) and v[0] <= v[1]
    if not ok:
        what = "positive integers" if integer else "finite positive numbers"
        raise ConfigError(
            f"deployment.{name} must be [low, high] of {what}, low <= high, got {v!r}"
        )
    for x in v:
        in_float32(x, f"deployment.{name}")
    return v


def bessel_j0(x: jax.Array, nodes: int = 64) -> jax.Array:
    """Bessel J0(x) = (1/pi) int_0^pi cos(x sin t) dt by the midpoint rule (spectrally accurate
    for a smooth periodic integrand: < 1e-7 for |x| < 30 with 64 nodes)."""
    t = (jnp.arange(nodes) + 0.5) * (jnp.pi / nodes)
    return jnp.mean(jnp.cos(jnp.asarray(x)[..., None] * jnp.sin(t)), axis=-1)


# --- building deployments ---------------------------------------------------------------------


def from_scenario(scn: Scenario) -> Deployment:
    """An unpadded deployment (all masks true) of a `Scenario`."""
    g = scn.beta0 / distances(scn) ** 2
    return Deployment(
        scn=scn,
        gain=g,
        ue_mask=jnp.ones((scn.n_ue,), bool),
        mec_mask=jnp.ones((scn.n_mec,), bool),
        masked=False,
    )


def _loguniform(key, shape, lo, hi):
    return jnp.exp(jax.random.uniform(key, shape, minval=jnp.log(lo), maxval=jnp.log(hi)))


def _grid_table(m_max: int) -> np.ndarray:
    """(m_max, m_max, 2) grid layouts in the unit square: row m-1 holds the layout of m MECs."""
    out = np.zeros((m_max, m_max, 2))
    for m in range(1, m_max + 1):
        out[m - 1, :m] = mec_layout(None, m, 1.0, "grid")
    return out


class Sampler(NamedTuple):
    """Bound pure functions of one deployment distribution."""

    init: Any  # key -> state
    step: Any  # (key, state) -> (state, Deployment, h (N_max, M_max))
    n_max: int
    m_max: int


def random_deployment(key, cfg: DeploymentConfig, sys: SystemConfig, n_ue=None, n_mec=None):
    """One draw of the `random` distribution, padded to (cfg.n_max, cfg.m_max); `n_ue`/`n_mec`
    (traced or Python ints) fix N or M instead of drawing them."""
    return _random(key, cfg, sys, n_ue, n_mec)[0]


def _random(key, cfg: DeploymentConfig, sys: SystemConfig, n_ue, n_mec):
    n_max, m_max = cfg.n_max, cfg.m_max
    ks = jax.random.split(key, 9)
    n = jax.random.randint(ks[0], (), cfg.n_ue[0], cfg.n_ue[1] + 1) if n_ue is None else n_ue
    m = jax.random.randint(ks[1], (), cfg.n_mec[0], cfg.n_mec[1] + 1) if n_mec is None else n_mec
    area = _loguniform(ks[2], (), *cfg.area)
    ue_pos = jax.random.uniform(ks[3], (n_max, 2)) * area
    if cfg.mec_layout == "grid":
        table = jnp.asarray(_grid_table(m_max), jnp.float32)
        mec_pos = table[jnp.asarray(m) - 1] * area
    else:
        mec_pos = jax.random.uniform(ks[4], (m_max, 2)) * area
    f32 = jnp.float32
    scn = Scenario(
        ue_pos=ue_pos.astype(f32),
        mec_pos=mec_pos.astype(f32),
        data_bits=_loguniform(ks[5], (n_max,), *cfg.data_bits).astype(f32),
        cycles=_loguniform(ks[6], (n_max,), *cfg.cycles).astype(f32),
        weights=jax.random.uniform(ks[7], (n_max,), minval=cfg.weight[0], maxval=cfg.weight[1]),
        f_mec=_loguniform(ks[8], (m_max,), *cfg.f_mec).astype(f32),
        **_constants(sys),
    )
    dep = from_scenario(scn)
    masks = {"ue_mask": jnp.arange(n_max) < n, "mec_mask": jnp.arange(m_max) < m}
    return dep.replace(**masks, masked=True), area


def _constants(sys: SystemConfig) -> dict:
    f32 = jnp.float32
    names = ("bandwidth", "p_max", "beta0", "noise", "kappa", "f_local")
    return {k: jnp.asarray(getattr(sys, k), f32) for k in names}


def rayleigh(key, dep: Deployment) -> jax.Array:
    """i.i.d. Rayleigh channel h = g l, l ~ Exp(1) (N_max, M_max)."""
    return dep.gain * jax.random.exponential(key, dep.gain.shape, dtype=dep.gain.dtype)


@struct.dataclass
class MobileState:
    """Random-waypoint UEs with Gauss-Markov fading."""

    dep: Deployment
    waypoint: chex.Array  # (N, 2) m
    area: chex.Array  # () m
    fading: chex.Array  # (N, M, 2) real and imaginary part of l_ij, each N(0, 1/2)
    t: chex.Array  # () int32 epochs since the deployment was drawn


def mobile_init(key, cfg: DeploymentConfig, sys: SystemConfig, n_ue=None, n_mec=None):
    """A fresh `random` deployment with waypoints and stationary fading."""
    k_dep, k_wp, k_f = jax.random.split(key, 3)
    dep, area = _random(k_dep, cfg, sys, n_ue, n_mec)
    wp = jax.random.uniform(k_wp, (cfg.n_max, 2)) * area
    fad = jax.random.normal(k_f, (cfg.n_max, cfg.m_max, 2)) * jnp.sqrt(0.5)
    return MobileState(dep=dep, waypoint=wp, area=area, fading=fad, t=jnp.zeros((), jnp.int32))


def mobile_move(key, st: MobileState, cfg: DeploymentConfig, rho) -> MobileState:
    """One epoch: every UE walks speed * epoch_s towards its waypoint (a new uniform waypoint on
    arrival), large-scale gains follow the positions, the fading takes one Gauss-Markov step."""
    k_wp, k_e = jax.random.split(key)
    pos, wp = st.dep.scn.ue_pos, st.waypoint
    step = cfg.speed * cfg.epoch_s
    d = wp - pos
    dist = jnp.linalg.norm(d, axis=-1, keepdims=True)
    arrive = dist <= step
    pos = jnp.where(arrive, wp, pos + d / jnp.maximum(dist, 1e-9) * step)
    new_wp = jax.random.uniform(k_wp, wp.shape) * st.area
    wp = jnp.where(arrive, new_wp, wp)
    e = jax.random.normal(k_e, st.fading.shape) * jnp.sqrt(0.5)
    fad = rho * st.fading + jnp.sqrt(1.0 - rho**2) * e
    scn = st.dep.scn.replace(ue_pos=pos.astype(jnp.float32))
    dep = st.dep.replace(scn=scn, gain=scn.beta0 / distances(scn) ** 2)
    return st.replace(dep=dep, waypoint=wp, fading=fad, t=st.t + 1)


def mobile_channel(st: MobileState) -> jax.Array:
    """h = g |l|^2 (N_max, M_max)."""
    return st.dep.gain * jnp.sum(st.fading**2, axis=-1)


def mobile_trajectory(
    key, cfg: DeploymentConfig, sys: SystemConfig, n_epochs: int, n_ue=None, n_mec=None
):
    """A trajectory of `n_epochs` epochs from one deployment: (Deployment stacked (E, ...),
    h (E, N_max, M_max)). Epoch 0 is the initial draw."""
    k0, k = jax.random.split(key)
    st0 = mobile_init(k0, cfg, sys, n_ue, n_mec)
    rho = cfg.rho

    def body(st, kt):
        nxt = mobile_move(kt, st, cfg, rho)
        return nxt, (st.dep, mobile_channel(st))

    _, (deps, H) = jax.lax.scan(body, st0, jax.random.split(k, n_epochs))
    return deps, H


def make_sampler(cfg: DeploymentConfig, sys: SystemConfig) -> Sampler:
    """The distribution of `cfg.kind` (random or mobile) as `init(key)` / `step(key, state)`;
    `step` returns the next state, the epoch's deployment and its channel. (The fixed
    deployment is the environment `env.fixed.FixedDeployment`.)"""
    if cfg.kind == "fixed":
        raise ValueError("deployment.kind=fixed has no sampler: it is env.fixed.FixedDeployment")
    if cfg.kind == "random":

        def step(key, st):
            k_d, k_h = jax.random.split(key)
            dep = random_deployment(k_d, cfg, sys)
            return st, dep, rayleigh(k_h, dep)

        return Sampler(lambda key: jnp.zeros((), jnp.int32), step, cfg.n_max, cfg.m_max)
    rho = cfg.rho

    def mstep(key, st):
        k_new, k_move = jax.random.split(key)
        fresh = mobile_init(k_new, cfg, sys)
        st = jax.tree.map(lambda a, b: jnp.where(st.t >= cfg.episode, a, b), fresh, st)
        return mobile_move(k_move, st, cfg, rho), st.dep, mobile_channel(st)

    return Sampler(lambda key: mobile_init(key, cfg, sys), mstep, cfg.n_max, cfg.m_max)


# --- masked costs (P2 in closed form on the real UEs and MECs) ---------------------------------


def safe_channel(dep: Deployment, h: jax.Array) -> jax.Array:
    """h with padded links set to their large-scale gain, or 1 if that is not positive."""
    ok = link_mask(dep) & (h > 0)
    fill = jnp.where(dep.gain > 0, dep.gain, 1.0)
    return jnp.where(ok, h, fill)


def masked_costs(dep: Deployment, h: jax.Array) -> OptionCosts:
    """`p2.option_costs` with padded UEs costing nothing and padded MEC options PAD_COST."""
    c = option_costs(dep.scn, safe_channel(dep, h))
    ue = dep.ue_mask[:, None]
    upload = jnp.where(dep.mec_mask[None, :], c.per_option[:, 1:], PAD_COST)
    per = jnp.where(ue, jnp.concatenate([c.per_option[:, :1], upload], axis=1), 0.0)
    return OptionCosts(per, jnp.where(dep.ue_mask, c.sqrt_wf, 0.0), c.inv_f_mec)


def sanitize(dep: Deployment, a: jax.Array) -> jax.Array:
    """Decision with padded UEs, and any UE on a padded MEC, set to local (0)."""
    on_real = dep.mec_mask[jnp.clip(a - 1, 0, dep.m_max - 1)] | (a == 0)
    return jnp.where(dep.ue_mask & on_real, a, 0).astype(jnp.int32)


def masked_latency(dep: Deployment, h: jax.Array, a: jax.Array) -> jax.Array:
    """L(a) over the real UEs and MECs (closed-form P2), a (..., N) -> (...)."""
    return costs_latency(masked_costs(dep, h), a)


def masked_allocation(dep: Deployment, h: jax.Array, a: jax.Array) -> dict:
    """P2's allocation for the real part: a, f (Hz) and p (W) (0 on padded UEs), latency (s)."""
    a = sanitize(dep, a)
    alloc = solve_p2_closed_form(dep.scn, safe_channel(dep, h), a)
    return {
        "a": a,
        "f": jnp.where(dep.ue_mask, alloc.f, 0.0),
        "p": jnp.where(dep.ue_mask, alloc.p, 0.0),
        "latency": masked_latency(dep, h, a),
    }


# --- one epoch's problem, padded or not --------------------------------------------------------


def problem_costs(p: Problem) -> OptionCosts:
    """The option costs of P2's closed form (`p2.option_costs`), masked when the deployment is."""
    return masked_costs(p.dep, p.h) if p.dep.masked else option_costs(p.dep.scn, p.h)


def problem_latency(p: Problem, a: jax.Array) -> jax.Array:
    """L(a) of eq. 13 for a (..., N) on the real part of the problem."""
    if p.dep.masked:
        return masked_latency(p.dep, p.h, a)
    return latency(p.dep.scn, p.h, a)


def decision(dep: Deployment, a: jax.Array) -> jax.Array:
    """a as int32 with padded UEs, and any UE on a padded MEC, sent local (`sanitize`)."""
    return sanitize(dep, a) if dep.masked else jnp.asarray(a, jnp.int32)


def problem_allocation(p: Problem, a: jax.Array) -> dict:
    """P2's allocation of a on the real part: a, f (Hz), p (W) (0 on padded UEs), latency (s)."""
    if p.dep.masked:
        return masked_allocation(p.dep, p.h, a)
    alloc = solve_p2_closed_form(p.dep.scn, p.h, a)
    return {"a": jnp.asarray(a, jnp.int32), "f": alloc.f, "p": alloc.p, "latency": alloc.latency}


def unpad(dep: Deployment, h=None):
    """The real sub-problem as NumPy-backed (Scenario, h (n, m)) for a single deployment."""
    n, m = int(np.sum(dep.ue_mask)), int(np.sum(dep.mec_mask))
    ue_idx = np.flatnonzero(np.asarray(dep.ue_mask))
    mec_idx = np.flatnonzero(np.asarray(dep.mec_mask))
    s = dep.scn
    scn = s.replace(
        ue_pos=s.ue_pos[ue_idx],
        mec_pos=s.mec_pos[mec_idx],
        data_bits=s.data_bits[ue_idx],
        cycles=s.cycles[ue_idx],
        weights=s.weights[ue_idx],
        f_mec=s.f_mec[mec_idx],
    )
    assert scn.n_ue == n and scn.n_mec == m
    if h is None:
        return scn
    return scn, np.asarray(h)[np.ix_(ue_idx, mec_idx)]
