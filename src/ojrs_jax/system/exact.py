"""Certified optimum of P1 (offloading decision) with P2 in closed form as a convex MIQP.

With binary x_ij (j = 0 local, j >= 1 MEC j) and c_ij = sqrt(w_i F_i / F_MEC_j), the objective
L(a) of `ojrs_jax.system.p2.latency` becomes

    min  sum_i x_i0 w_i F_i / f_i0 + sum_{i, j>=1} x_ij w_i D_i / r_ij + sum_j z_j
    s.t. sum_j x_ij = 1,   y_j = sum_i c_ij x_ij,   z_j >= y_j^2,

a convex mixed-integer quadratically constrained program that SCIP (pyscipopt) solves to proven
optimality. Costs are computed in float64 NumPy, independently of the JAX code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ojrs_jax.system.scenario import Scenario

TIME_LIMIT = 60.0  # default SCIP time limit per draw, s (every `time_limit` setting's default)


@dataclass(frozen=True)
class ExactResult:
    """Outcome of one MIQP solve."""

    a: np.ndarray  # (N,) int decision
    latency: float  # L(a) recomputed in float64, s
    bound: float  # SCIP's proven lower bound on the optimum, s
    status: str  # "optimal", or SCIP's status when a limit stopped it
    seconds: float  # wall time of the solve


def cost_matrix(scn: Scenario, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 linear costs (N, M+1) and load coefficients c (N, M) of the MIQP."""
    w = np.asarray(scn.weights, np.float64)
    F = np.asarray(scn.cycles, np.float64)
    D = np.asarray(scn.data_bits, np.float64)
    f_mec = np.asarray(scn.f_mec, np.float64)
    p_max, kappa = float(scn.p_max), float(scn.kappa)
    f0 = min(float(scn.f_local), (p_max / kappa) ** (1.0 / 3.0))
    r = float(scn.bandwidth) * np.log2(1.0 + p_max * np.asarray(h, np.float64) / float(scn.noise))
    cost = np.concatenate([(w * F / f0)[:, None], (w * D)[:, None] / r], axis=1)
    c = np.sqrt((w * F)[:, None] / f_mec[None, :])
    return cost, c


def latency_np(scn: Scenario, h: np.ndarray, a: np.ndarray) -> float:
    """L(a) in float64 from the MIQP's own cost data."""
    cost, c = cost_matrix(scn, h)
    a = np.asarray(a)
    lin = cost[np.arange(a.size), a].sum()
    loads = np.array([c[a == j + 1, j].sum() for j in range(c.shape[1])])
    return float(lin + np.sum(loads**2))


def exact_miqp(
    scn: Scenario,
    h: np.ndarray,
    time_limit: float = TIME_LIMIT,
    warm_start: np.ndarray | None = None,
    threads: int = 1,
) -> ExactResult:
    """Solve P1 exactly with SCIP; `warm_start` (N,) is handed to SCIP as a first solution."""
    import pyscipopt

    cost, c = cost_matrix(scn, h)
    n, m1 = cost.shape
    model = pyscipopt.Model("ojrs_p1")
    model.hideOutput()
    model.setParam("limits/time", float(time_limit))
    model.setParam("limits/gap", 0.0)
    model.setParam("parallel/maxnthreads", int(threads))
    x = [[model.addVar(vtype="B", name=f"x{i}_{j}") for j in range(m1)] for i in range(n)]
    z = [model.addVar(lb=0.0, name=f"z{j}") for j in range(m1 - 1)]
    for i in range(n):
        model.addCons(pyscipopt.quicksum(x[i]) == 1)
    # An explicit load variable y_j lets SCIP separate y_j^2 <= z_j as a univariate convex
    # constraint: about 100x faster than squaring the linear expression in place.
    y = [model.addVar(lb=0.0, name=f"y{j}") for j in range(m1 - 1)]
    for j in range(m1 - 1):
        model.addCons(y[j] == pyscipopt.quicksum(float(c[i, j]) * x[i][j + 1] for i in range(n)))
        model.addCons(y[j] * y[j] <= z[j])
    model.setObjective(
        pyscipopt.quicksum(float(cost[i, j]) * x[i][j] for i in range(n) for j in range(m1))
        + pyscipopt.quicksum(z),
        "minimize",
    )
    if warm_start is not None:
        ws = np.asarray(warm_start)
        sol = model.createSol()
        for i in range(n):
            for j in range(m1):
                model.setSolVal(sol, x[i][j], float(ws[i] == j))
        for j in range(m1 - 1):
            load = float(c[ws == j + 1, j].sum())
            model.setSolVal(sol, y[j], load)
            model.setSolVal(sol, z[j], load**2)
        model.addSol(sol)
    t0 = time.perf_counter()
    model.optimize()
    seconds = time.perf_counter() - t0
    best = model.getBestSol()
    vals = np.array([[model.getSolVal(best, x[i][j]) for j in range(m1)] for i in range(n)])
    a = np.argmax(vals, axis=1).astype(np.int32)
    return ExactResult(
        a=a,
        latency=latency_np(scn, h, a),
        bound=float(model.getDualbound()),
        status=str(model.getStatus()),
        seconds=seconds,
    )
