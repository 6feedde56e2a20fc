"""Resource allocation sub-problem P2 for a fixed offloading decision (paper eqs. 5-13).

A decision is an integer vector a (N,) with a_i = 0 for local execution and a_i = j for MEC j.
Given a, P2 separates (docs/findings/model.md): offloading UEs transmit at p = P_max (no
interference), local UEs run at f_i0 = min(F_L, (P_max/kappa)^(1/3)), and the UEs S_j on MEC j
share its CPU by the KKT rule f_ij = F_MEC_j sqrt(w_i F_i) / sum_{k in S_j} sqrt(w_k F_k). The
weighted latency is then

    L(a) = sum_{i local} w_i F_i / f_i0 + sum_{i offloaded} w_i D_i / r_{i,a_i}
           + sum_j (sum_{i: a_i = j} sqrt(w_i F_i))^2 / F_MEC_j.

`latency` is that closed form (the fast exact path, jit/vmap friendly). `solve_p2_pg` solves the
CPU shares numerically with jaxopt's ProjectedGradient, a check of the closed form and a template;
`solve_p2` picks one by name and both return the same `Allocation`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.core.settings import ConfigError
from ojrs_jax.system.scenario import Scenario, local_speed, rate

P2_METHODS = ("closed_form", "jaxopt")


class Allocation(NamedTuple):
    """Solution of P2 for one decision."""

    f: chex.Array  # (N,) CPU speed given to UE i's task on its chosen server, Hz
    p: chex.Array  # (N,) UE power: transmit power if offloaded, kappa f^3 if local, W
    latency: chex.Array  # () weighted latency sum_i w_i T_i, s
    per_ue: chex.Array  # (N,) latency T_i of each UE, s


def _parts(scn: Scenario, h: jax.Array, a: jax.Array):
    """Shared pieces: one-hot (N, M+1), upload time (N,) of the chosen link, sqrt(w F) (N,)."""
    chex.assert_rank([h, a], [2, 1])
    onehot = jax.nn.one_hot(a, scn.n_mec + 1, dtype=h.dtype)
    # The chosen link's gain first (one log per UE, not M); picking it by one-hot gives local
    # rows h = 0, r = 0, and the + 1 keeps them free of 1/0.
    h_chosen = jnp.sum(onehot[:, 1:] * h, axis=1)
    r_chosen = rate(scn, h_chosen, scn.p_max) + onehot[:, 0]
    t_up = jnp.where(a > 0, scn.data_bits / r_chosen, 0.0)
    s = jnp.sqrt(scn.weights * scn.cycles)
    return onehot, t_up, s


def latency(scn: Scenario, h: jax.Array, a: jax.Array) -> jax.Array:
    """Weighted latency L(a) of decision a (N,) under channel h (N, M), P2 solved exactly."""
    onehot, t_up, s = _parts(scn, h, a)
    local = jnp.sum(onehot[:, 0] * scn.weights * scn.cycles) / local_speed(scn)
    upload = jnp.sum(scn.weights * t_up)
    load = s @ onehot[:, 1:]  # (M,) sum of sqrt(w F) per MEC
    compute = jnp.sum(load**2 / scn.f_mec)
    return local + upload + compute


class OptionCosts(NamedTuple):
    """The parts of L(a) that do not depend on the other UEs' choices, for one channel h.

    L(a) = sum_i per_option[i, a_i] + sum_j (sum_{i: a_i = j} sqrt_wf_i)^2 / F_MEC_j: a search
    that evaluates many decisions under one h computes the rates (a log per link) once here.
    """

    per_option: chex.Array  # (N, M+1) w_i F_i / f_i0 (j = 0), w_i D_i / r_ij (j >= 1), s
    sqrt_wf: chex.Array  # (N,) sqrt(w_i F_i)
    inv_f_mec: chex.Array  # (M,) 1 / F_MEC_j


def option_costs(scn: Scenario, h: jax.Array) -> OptionCosts:
    """Per-UE, per-option latency terms of channel h (N, M) (the closed form above, split)."""
    chex.assert_rank(h, 2)
    local = scn.weights * scn.cycles / local_speed(scn)  # (N,)
    upload = scn.weights[:, None] * scn.data_bits[:, None] / rate(scn, h, scn.p_max)  # (N, M)
    return OptionCosts(
        per_option=jnp.concatenate([local[:, None], upload], axis=1),
        sqrt_wf=jnp.sqrt(scn.weights * scn.cycles),
        inv_f_mec=1.0 / scn.f_mec,
    )


def costs_latency(c: OptionCosts, a: jax.Array) -> jax.Array:
    """L(a) from precomputed option costs, for decisions a (..., N) -> (...)."""
    onehot = jax.nn.one_hot(a, c.per_option.shape[1], dtype=c.per_option.dtype)  # (..., N, M+1)
    own = jnp.sum(onehot * c.per_option, axis=(-2, -1))
    load = jnp.einsum("...nj,n->...j", onehot[..., 1:], c.sqrt_wf)  # (..., M)
    return own + jnp.sum(load**2 * c.inv_f_mec, axis=-1)


def batched_latency(scn: Scenario, h: jax.Array, a: jax.Array) -> jax.Array:
    """L for a batch: h (B, N, M) with a (B, N), or one h (N, M) with many a (K, N)."""
    h_axis = 0 if h.ndim == 3 else None
    return jax.vmap(latency, in_axes=(None, h_axis, 0))(scn, h, a)


def _allocation(scn: Scenario, h: jax.Array, a: jax.Array, f: jax.Array) -> Allocation:
    """Assemble (f, p, latency, per-UE times) from CPU speeds f (N,) on the chosen servers."""
    _, t_up, _ = _parts(scn, h, a)
    t = t_up + scn.cycles / f
    p = jnp.where(a > 0, scn.p_max, scn.kappa * f**3)
    return Allocation(f=f, p=p, latency=jnp.sum(scn.weights * t), per_ue=t)


def solve_p2_closed_form(scn: Scenario, h: jax.Array, a: jax.Array) -> Allocation:
    """Exact P2 allocation by the KKT rule (eqs. 11-13 in closed form)."""
    onehot, _, s = _parts(scn, h, a)
    load = s @ onehot[:, 1:]  # (M,)
    mec = jnp.clip(a - 1, 0, scn.n_mec - 1)
    f_off = scn.f_mec[mec] * s / jnp.maximum(load[mec], jnp.finfo(s.dtype).tiny)
    f = jnp.where(a > 0, f_off, local_speed(scn))
    return _allocation(scn, h, a, f)


def _project_shares(g: jax.Array, a: jax.Array, n_mec: int, eps: float) -> jax.Array:
    """Euclidean projection of normalised shares g (N,) onto {g >= eps, sum_{a_i=j} g_i <= 1 for
    every MEC j, g_i <= 1 for local UEs}.

    Per MEC, if clipping at eps already fits the budget that is the projection; otherwise it is
    eps plus the projection of g - eps onto the simplex of mass 1 - n_j eps (sort-based, exact).
    """
    n = g.shape[0]
    mask = jax.nn.one_hot(a - 1, n_mec, dtype=bool).T  # (M, N); local UEs in no row
    u = jnp.where(mask, g[None, :] - eps, -jnp.inf)
    u_sorted = -jnp.sort(-u, axis=1)  # descending; masked entries last
    valid = jnp.isfinite(u_sorted)
    mass = 1.0 - eps * jnp.sum(mask, axis=1, keepdims=True)  # (M, 1)
    css = jnp.cumsum(jnp.where(valid, u_sorted, 0.0), axis=1) - mass
    k = jnp.arange(1, n + 1, dtype=g.dtype)[None, :]
    support = valid & (u_sorted - css / k > 0)
    rho = jnp.maximum(jnp.sum(support, axis=1), 1)  # (M,)
    theta = jnp.take_along_axis(css, (rho - 1)[:, None], axis=1)[:, 0] / rho
    over = jnp.sum(jnp.where(mask, jnp.maximum(g[None, :], eps), 0.0), axis=1) > 1.0  # (M,)
    # theta = 0 leaves an MEC within budget at max(g, eps) (a -inf here made its shares inf)
    theta_i = jnp.where(over, theta, 0.0)[jnp.clip(a - 1, 0, n_mec - 1)]
    on_mec = jnp.maximum(jnp.maximum(g - eps - theta_i, 0.0) + eps, eps)
    return jnp.where(a > 0, on_mec, jnp.clip(g, eps, 1.0))


def solve_p2_pg(
    scn: Scenario,
    h: jax.Array,
    a: jax.Array,
    maxiter: int = 5000,
    tol: float = 1e-4,
    eps: float = 1e-4,
    acceleration: bool = False,
) -> tuple[Allocation, jax.Array]:
    """P2's CPU shares by jaxopt ProjectedGradient; returns (allocation, iterations used).

    Variables are normalised shares g_i = f_i / F_MEC_j (offloaded) or f_i / f_i0 (local), so the
    objective sum_i w_i F_i / f_i is well scaled; start from equal shares. Transmit power is
    P_max (optimal in this interference-free model, eq. 2). The lower bound `eps` on a share
    keeps the 1/g objective's curvature bounded; FISTA acceleration is off by default because
    its extrapolated points can leave that region and jaxopt's line search then accepts a bad
    step (seen at M = 5 with uneven weights). In float32 the gradient-mapping norm can stall
    above `tol` once the objective is within ~1e-6 of optimal, so `maxiter` also ends runs; it is
    5000 because uneven shares make the problem ill-conditioned (a property test found a case
    with weights 0.03-8.5 still 4e-4 off the optimum after 1000 iterations, 2e-7 after 5000).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="JAXopt is no longer maintained")
        from jaxopt import ProjectedGradient

    n_mec = scn.n_mec
    onehot = jax.nn.one_hot(a - 1, n_mec, dtype=h.dtype)
    count = jnp.sum(onehot, axis=0)  # (M,)
    scale = jnp.where(a > 0, onehot @ scn.f_mec, local_speed(scn))  # Hz per unit share
    coef = scn.weights * scn.cycles / scale  # (N,)
    g0 = jnp.where(a > 0, 1.0 / jnp.maximum(onehot @ count, 1.0), 1.0)

    # Only the MEC terms depend on the free shares (local UEs sit at their bound g = 1), and
    # they are normalised by their value at the start, so jaxopt's line search (which restarts
    # at step 1 below step 1e-6) and its tolerance work on an objective of order one whatever
    # the units: with the constant local terms inside, a large local latency hid the MEC terms
    # from `tol` (seen with N = 6, M = 3 and uneven tasks: 1e-3 off after 2 iterations).
    coef = jnp.where(a > 0, coef, 0.0)
    norm = jnp.sum(coef / g0)
    norm = jnp.where(norm > 0, norm, 1.0)

    def objective(g, coef):
        return jnp.sum(coef / g) / norm

    def projection(g, hyper):
        (a_,) = hyper
        return _project_shares(g, a_, n_mec, eps)

    pg = ProjectedGradient(
        fun=objective,
        projection=projection,
        maxiter=maxiter,
        tol=tol,
        maxls=50,
        acceleration=acceleration,
        implicit_diff=False,
        unroll=False,  # with implicit_diff=False, unroll=True would be a maxiter-step scan
        jit=True,
    )
    g, state = pg.run(g0, hyperparams_proj=(a,), coef=coef)
    return _allocation(scn, h, a, g * scale), state.iter_num


def solve_p2(scn: Scenario, h: jax.Array, a: jax.Array, method: str = "closed_form") -> Allocation:
    """P2 by `method` in P2_METHODS (the config switch `p2.method`)."""
    if method == "closed_form":
        return solve_p2_closed_form(scn, h, a)
    if method == "jaxopt":
        return solve_p2_pg(scn, h, a)[0]
    raise ConfigError(f"p2 method must be one of {', '.join(P2_METHODS)}, got {method!r}")


def check_decision(a, n_ue: int, n_mec: int) -> np.ndarray:
    """Validate a decision (C1-C2 in integer coding): shape (..., N), integers in 0..M."""
    arr = np.asarray(a)
    if arr.ndim == 0 or arr.shape[-1] != n_ue:
        raise ConfigError(f"decision must have last dimension N={n_ue}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise ConfigError("decision entries must be integers")
        arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr > n_mec)
    if np.any(bad):
        raise ConfigError(f"decision option {int(arr[bad][0])} outside 0..M={n_mec}")
    return arr.astype(np.int32)


def evaluate(scn: Scenario, h, a, method: str = "closed_form") -> Allocation:
    """Validating public entry point: check shapes, gains and the decision, then solve P2."""
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (scn.n_ue, scn.n_mec):
        raise ConfigError(f"channel must have shape (N, M)={(scn.n_ue, scn.n_mec)}, got {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise ConfigError("channel gains must be finite and positive")
    a = check_decision(a, scn.n_ue, scn.n_mec)
    return solve_p2(scn, jnp.asarray(h, jnp.float32), jnp.asarray(a), method)


def feasibility(scn: Scenario, a, alloc: Allocation, rtol: float = 1e-5) -> dict[str, bool]:
    """Check constraints C1-C5 of P0 for a decision and its allocation; one bool per constraint."""
    a = np.asarray(a)
    f = np.asarray(alloc.f, np.float64)
    p = np.asarray(alloc.p, np.float64)
    f_local, p_max = float(scn.f_local), float(scn.p_max)
    kappa = float(scn.kappa)
    loc = a == 0
    loads = np.array([f[a == j + 1].sum() for j in range(scn.n_mec)])
    return {
        "C1_C2_one_option": bool(np.all((a >= 0) & (a <= scn.n_mec))),
        "C3_local_cpu": bool(np.all(f[loc] <= f_local * (1 + rtol))),
        "C4_power": bool(
            np.all(p <= p_max * (1 + rtol)) and np.all(kappa * f[loc] ** 3 <= p_max * (1 + rtol))
        ),
        "C5_mec_cpu": bool(np.all(loads <= np.asarray(scn.f_mec, np.float64) * (1 + rtol))),
        "positive": bool(np.all(f > 0) and np.all(p > 0)),
    }
